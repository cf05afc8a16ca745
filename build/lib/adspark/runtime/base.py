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
from typing import Any

import numpy as np
import pyarrow as pa

from adspark.errors import ArtifactError
from adspark.features import Preprocessor

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

    def score_features(self, features: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def score_arrays(self, arrays: list[pa.Array] | list[pa.ChunkedArray]) -> np.ndarray:
        if len(arrays[0]) == 0:
            return np.zeros(0, dtype=np.float64)
        return self.score_features(self.preprocessor.transform(arrays))


# kind -> scorer class; filled by adspark/runtime/__init__.py, the one place that names the kinds.
SCORERS: dict[str, type[Scorer]] = {}


def build_scorer(manifest: dict[str, Any], files: dict[str, bytes]) -> Scorer:
    kind = manifest.get("kind")
    if not isinstance(kind, str) or kind not in SCORERS:
        raise ArtifactError(f"manifest.json: unknown model kind {kind!r} (known: {', '.join(SCORERS)})")
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


def batch_scorer(key: str, payload: Any) -> Callable[[Iterator[pa.StructArray]], Iterator[pa.Array]]:
    """The body of the scoring UDF: feature struct batches in, float64 scores out.

    `payload` is a Spark broadcast of (manifest JSON, {file name: bytes}); it is
    only dereferenced when a worker has no cached scorer for `key` yet.
    """

    def score(batches: Iterator[pa.StructArray]) -> Iterator[pa.Array]:
        scorer = cached_scorer(key, lambda: unpack_payload(payload.value))
        for batch in batches:
            scores = scorer.score_arrays(batch.flatten())
            yield pa.array(scores, type=pa.float64())

    return score

