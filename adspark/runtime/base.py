"""Executor-side scoring, the common part: onnxruntime sessions, the scorer contract, the worker cache.

Imported on executors, so it needs only numpy, pyarrow and onnxruntime (never
TensorFlow or pydantic). One scorer is cached per Python worker process and
keyed by the artifact digest, like mlflow's per-worker model cache: Spark reuses
Python workers across tasks (spark.python.worker.reuse), so the ONNX graph is
parsed once per worker, not once per task or batch.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pyarrow as pa

from adspark.decisions import ScoreSummary
from adspark.errors import ArtifactError
from adspark.features import Preprocessor

# Per column of a row: its part of the score (>= 0) and, for numeric columns, the value the
# model expected in the input's own units (NaN for categoricals): see Scorer.explain_features.
Explanation = tuple[np.ndarray, np.ndarray | None, np.ndarray | None]
REASON_TYPE = pa.list_(pa.struct([("feature", pa.string()), ("share", pa.float64()), ("expected", pa.float64())]))

_CACHE: dict[str, Scorer] = {}
_LOCK = threading.Lock()


def onnx_session(model_bytes: bytes, name: str) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    # One thread per session: Spark already runs one task per core, so more
    # threads only oversubscribe the cores and slow every task down.
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    try:
        return ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own untyped errors
        raise ArtifactError(f"{name}: not a loadable ONNX model ({err})") from None


class Scorer:
    """Maps input arrays to anomaly scores (float64, higher = more anomalous)."""

    def __init__(self, manifest: dict[str, Any], files: dict[str, bytes]) -> None:
        self.manifest = manifest
        self.preprocessor = Preprocessor.from_state(manifest["preprocessing"])
        self._summary: ScoreSummary | None = None

    def score_features(self, features: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def score_arrays(self, arrays: list[pa.Array] | list[pa.ChunkedArray]) -> np.ndarray:
        if len(arrays[0]) == 0:
            return np.zeros(0, dtype=np.float64)
        return self.score_features(self.preprocessor.transform(arrays))

    # --- reasons and percentiles ------------------------------------------------
    def explain_features(self, features: np.ndarray) -> Explanation:
        """(scores, per-column parts [n, columns] or None, expected values [n, columns] or None).

        Scores must be bit-identical to score_features; parts come from the same
        pass. A kind that cannot attribute its score returns None parts (no reasons).
        """
        return self.score_features(features), None, None

    def explain_arrays(self, arrays: list[pa.Array] | list[pa.ChunkedArray]) -> Explanation:
        if len(arrays[0]) == 0:
            empty = np.zeros((0, len(self.preprocessor.columns)))
            return np.zeros(0, dtype=np.float64), empty, empty
        return self.explain_features(self.preprocessor.transform(arrays))

    @property
    def summary(self) -> ScoreSummary:
        if self._summary is None:
            self._summary = ScoreSummary.from_state(self.manifest["score_summary"])
        return self._summary

    def results(self, arrays: list[pa.Array] | list[pa.ChunkedArray], percentile: bool, explain: int) -> list[pa.Array]:
        """[score, percentile (if asked), top-`explain` reasons (if explain > 0)] for one batch."""
        if explain:
            scores, parts, expected = self.explain_arrays(arrays)
        else:
            scores, parts, expected = self.score_arrays(arrays), None, None
        return self.package(scores, parts, expected, percentile, explain)

    def package(
        self, scores: np.ndarray, parts: np.ndarray | None, expected: np.ndarray | None, percentile: bool, explain: int
    ) -> list[pa.Array]:
        """The output arrays of one batch: [score, percentile (if asked), top-`explain` reasons (if explain > 0)]."""
        out = [pa.array(scores, type=pa.float64())]
        if percentile:
            out.append(pa.array(self.summary.percentile(scores), type=pa.float64()))
        if explain:
            out.append(reasons_array(self.preprocessor.columns, parts, expected, explain, len(scores)))
        return out


def column_owners(preprocessor: Preprocessor) -> np.ndarray:
    """For each feature of Preprocessor.transform, the index of its input column (indicators, one-hots grouped)."""
    numeric, categorical = preprocessor.numeric_ or [], preprocessor.categorical_ or []
    owners = list(range(len(numeric))) + [i for i, s in enumerate(numeric) if s.indicator]
    for j, spec in enumerate(categorical):
        owners += [len(numeric) + j] * spec.width
    return np.asarray(owners, dtype=np.int64)


def grouping(owners: np.ndarray, columns: int) -> np.ndarray:
    """A [features, columns] 0/1 matrix: feature parts @ grouping = column parts."""
    g = np.zeros((len(owners), columns))
    g[np.arange(len(owners)), owners] = 1.0
    return g


def to_input_units(preprocessor: Preprocessor, z: np.ndarray) -> np.ndarray:
    """Undo the numeric transform: [n, numeric columns] of robust z (signed-log where fitted) -> input units."""
    out = np.empty_like(z, dtype=np.float64)
    for i, spec in enumerate(preprocessor.numeric_ or []):
        col = z[:, i].astype(np.float64)
        if spec.log:
            col = np.sign(col) * spec.knee * np.expm1(np.minimum(np.abs(col) / spec.knee, 700.0))
        out[:, i] = spec.median + spec.scale * col
    return out


def expected_values(preprocessor: Preprocessor, numeric_z: np.ndarray) -> np.ndarray:
    """[n, columns]: numeric columns in input units, NaN for categoricals."""
    n, width = numeric_z.shape[0], len(preprocessor.columns)
    out = np.full((n, width), np.nan)
    k = len(preprocessor.numeric_ or [])
    out[:, :k] = to_input_units(preprocessor, numeric_z[:, :k])
    return out


def shares(parts: np.ndarray) -> np.ndarray:
    """Each row's column parts (negatives as 0) as shares of its total; equal shares for a row without any."""
    parts = np.maximum(parts, 0.0)
    total = parts.sum(axis=1, keepdims=True)
    return np.where(total > 0, parts / np.where(total > 0, total, 1.0), 1.0 / max(parts.shape[1], 1))


def reasons_array(
    names: list[str], parts: np.ndarray | None, expected: np.ndarray | None, k: int, n: int
) -> pa.Array:
    """Per row, the k columns with the largest share of the score, as array<struct<feature, share, expected>>.

    share = the column's part / the row's total (a row without any error gives
    every column an equal share); ties keep the columns' order. Rows of a kind
    without attribution (parts None) get null.
    """
    if parts is None:
        return pa.nulls(n, type=REASON_TYPE)
    k = min(k, parts.shape[1])
    share = shares(parts)
    order = np.argsort(-share, axis=1, kind="stable")[:, :k]
    rows = np.arange(n)[:, None]
    top_share = share[rows, order].ravel()
    exp = (expected if expected is not None else np.full(parts.shape, np.nan))[rows, order].ravel()
    feature = pa.DictionaryArray.from_arrays(pa.array(order.ravel().astype(np.int32)), pa.array(names, pa.string()))
    items = pa.StructArray.from_arrays(
        [feature.cast(pa.string()), pa.array(top_share, pa.float64()), pa.array(exp, pa.float64(), mask=np.isnan(exp))],
        names=["feature", "share", "expected"],
    )
    return pa.ListArray.from_arrays(pa.array(np.arange(0, n * k + 1, k, dtype=np.int32)), items)


# kind -> scorer class; filled by adspark/runtime/__init__.py, the one place that names the kinds.
SCORERS: dict[str, type[Scorer]] = {}


def build_scorer(manifest: dict[str, Any], files: dict[str, bytes]) -> Scorer:
    kind = manifest.get("kind")
    if not isinstance(kind, str) or kind not in SCORERS:
        raise ArtifactError(f"manifest.json: unknown model kind {kind!r} (known: {', '.join(SCORERS)})")
    model = manifest.get("model")
    if isinstance(model, dict) and "members" in model:
        kind = "ensemble"  # combined members: the ensemble kind, or a family trained once per loss
    return SCORERS[kind](manifest, files)


def cached_scorer(key: str, load: Callable[[], tuple[dict[str, Any], dict[str, bytes]]]) -> Scorer:
    """The worker's scorer for artifact `key`, built on first use."""
    scorer = _CACHE.get(key)
    if scorer is None:
        with _LOCK:
            scorer = _CACHE.get(key)
            if scorer is None:
                scorer = build_scorer(*load())
                _CACHE.clear()  # a worker only ever needs the newest model
                _CACHE[key] = scorer
    return scorer


def unpack_payload(payload: tuple[str, dict[str, bytes]]) -> tuple[dict[str, Any], dict[str, bytes]]:
    import json

    manifest_json, files = payload
    return json.loads(manifest_json), files


RESULT_FIELDS = ("score", "percentile", "reasons")


def result_struct(results: list[pa.Array], percentile: bool, explain: int) -> pa.StructArray:
    """Scorer.results as one struct array (fields: score, then percentile and reasons when asked)."""
    names = ["score"] + (["percentile"] if percentile else []) + (["reasons"] if explain else [])
    return pa.StructArray.from_arrays(results, names=names)


def batch_scorer(
    key: str, payload: Any, percentile: bool = False, explain: int = 0, counting: Counting | None = None
) -> Callable[[Iterator[pa.StructArray]], Iterator[pa.Array]]:
    """The body of the scoring UDF: feature struct batches in, float64 scores out.

    With `percentile` or `explain`, each batch comes out as a struct of the score,
    its percentile and its top-`explain` reasons, all from one scoring pass.
    `payload` is a Spark broadcast of (manifest JSON, {file name: bytes}); it is
    only dereferenced when a worker has no cached scorer for `key` yet. With
    `counting` (a drift Tally and its accumulator), the batches' features are
    also counted for drift (adspark/drift.py).
    """

    def score(batches: Iterator[pa.StructArray]) -> Iterator[pa.Array]:
        scorer = cached_scorer(key, lambda: unpack_payload(payload.value))
        with counted(counting) as count:
            for batch in batches:
                arrays = batch.flatten()
                if percentile or explain:
                    results = scorer.results(arrays, percentile, explain)
                    count(arrays, results)
                    yield result_struct(results, percentile, explain)
                else:
                    scores = pa.array(scorer.score_arrays(arrays), type=pa.float64())
                    count(arrays, [scores])
                    yield scores

    return score


Counting = tuple[Any, Any]  # (adspark.drift.Tally, a Spark accumulator of drift.PartitionCounts)


BatchCount = Callable[[list[pa.Array], list[pa.Array]], None]


@contextmanager
def counted(counting: Counting | None) -> Iterator[BatchCount]:
    """A function counting one batch for drift: its features and its results (Scorer.results: the score first,
    the reasons last when asked); the task's total goes to the accumulator at the end.

    The total is added only when the task's batches all went through, keyed by
    partition, so a retried task replaces its counts rather than adding them again.
    """
    if counting is None:
        yield lambda arrays, results: None
        return
    tally, sink = counting
    total = tally.zero()

    def count(arrays: list[pa.Array], results: list[pa.Array]) -> None:
        nonlocal total
        reasons = results[-1] if len(results) > 1 and pa.types.is_list(results[-1].type) else None
        scores = results[0].to_numpy(zero_copy_only=False)
        total = total + tally.count(arrays, scores, reasons)

    yield count
    from pyspark import TaskContext

    context = TaskContext.get()
    sink.add({context.partitionId() if context is not None else 0: total})

