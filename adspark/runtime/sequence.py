"""Executor-side scoring of event streams with the LSTM next-event model.

Needs only numpy, pyarrow and onnxruntime, like the rest of adspark.runtime. Events arrive
in stream order (Spark sorts each partition by stream, then timestamp), each with
an int64 stream key. For every event the scorer builds the window of the
`window` events before it in the same stream, left-padded when the stream has
fewer, asks the network for its prediction of the event, and scores the surprise:

- numeric features: the squared standardised error (x - mean) / spread of the
  predicted Gaussian, each feature scaled by its typical training value;
- categorical features: -log p(actual value | history), divided by the column's
  typical training surprise; a value that never occurred in training (a never-
  seen category, or null when the sample had none) gets the cap NLL_CAP;
- score = each input column's surprise with an equal share, so higher = more
  anomalous and the scale matches across columns.

The last `window` events are carried from one Arrow batch to the next, so a
score does not depend on how Spark cut the partition into batches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from adspark.features import CODE_PAD, Preprocessor
from adspark.runtime.base import (
    Counting,
    Scorer,
    cached_scorer,
    column_owners,
    counted,
    expected_values,
    grouping,
    onnx_session,
    result_struct,
    unpack_payload,
)

# Column of the int64 stream key the scorer receives first in every batch.
STREAM_COL = "__adspark_stream"
# exp(-20) ~ 2e-9: the surprise of an event the model gives no chance at all.
NLL_CAP = 20.0
STREAM_CHUNK = 8192  # events per onnxruntime call when the driver scores a whole table
# The numeric head predicts a mean and a spread per feature (a Gaussian), so an error
# is judged against how predictable the feature is in this context; the floor, in
# robust-scale units, keeps a near-deterministic context from dividing by ~0.
SIGMA_MIN = 0.05
# The network input has one channel more than the numeric block: 1 marks padding.
NUMERIC_INPUT = "num"


def categorical_input(j: int) -> str:
    return f"cat_{j}"


def current_input(j: int) -> str:
    """The scored event's own code of categorical column j (conditions the numeric prediction)."""
    return f"now_{j}"


@dataclass
class History:
    """The last events seen by this task (any stream), in order."""

    keys: np.ndarray  # int64 [m]
    num: np.ndarray  # float32 [m, numeric width + 1]: network inputs, last channel = padding flag
    codes: np.ndarray  # int32 [m, categorical columns]


def stream_windows(
    keys: np.ndarray, num: np.ndarray, codes: np.ndarray, first: int, window: int, with_current: bool
) -> dict[str, Any]:
    """Network inputs for events first.. of the concatenated (history + batch) arrays.

    Row g's window holds rows g-window .. g-1 of its own stream; positions before
    the stream's first event are padding (zeros, padding flag 1, code CODE_PAD).
    """
    m = len(keys)
    starts = np.ones(m, dtype=bool)
    starts[1:] = keys[1:] != keys[:-1]
    seg_start = np.maximum.accumulate(np.where(starts, np.arange(m), 0))
    pos = np.arange(first, m)
    valid = np.arange(window)[None, :] >= (window - np.minimum(window, pos - seg_start[first:]))[:, None]
    pad_row = np.zeros(num.shape[1], dtype=np.float32)
    pad_row[-1] = 1.0
    num_p = np.concatenate([np.broadcast_to(pad_row, (window, num.shape[1])), num])
    win = np.lib.stride_tricks.sliding_window_view(num_p, window, axis=0)[pos].transpose(0, 2, 1)
    feeds = {NUMERIC_INPUT: np.where(valid[:, :, None], win, pad_row).astype(np.float32)}
    codes_p = np.concatenate([np.full((window, codes.shape[1]), CODE_PAD, dtype=np.int32), codes])
    cwin = np.lib.stride_tricks.sliding_window_view(codes_p, window, axis=0)[pos]  # [n, cols, window]
    for j in range(codes.shape[1]):
        feeds[categorical_input(j)] = np.where(valid, cwin[:, j, :], CODE_PAD).astype(np.int32)
        if with_current:
            feeds[current_input(j)] = codes[first:, j : j + 1].astype(np.int32)
    return feeds


def numeric_input(preprocessor: Preprocessor, num: np.ndarray) -> np.ndarray:
    """The network's numeric input: the clipped block plus a padding-flag channel (0 for real events)."""
    x = np.zeros((len(num), num.shape[1] + 1), dtype=np.float32)
    x[:, : num.shape[1]] = preprocessor.network_input(num)
    return x


def numeric_z(num: np.ndarray, out: np.ndarray, width: int, sigma_min: float) -> np.ndarray:
    """Standardised prediction errors (x - mean) / spread from the network's [mean | raw spread] columns."""
    spread = np.logaddexp(0.0, out[:, width : 2 * width]) + sigma_min  # softplus
    return (num - out[:, :width]) / spread


class LstmScorer(Scorer):
    """Scores each event against the LSTM's prediction from the events before it in its stream."""

    def __init__(self, manifest: dict[str, Any], files: dict[str, bytes]) -> None:
        super().__init__(manifest, files)
        spec = manifest["model"]
        name = spec["onnx_files"][0]
        self.session = onnx_session(files[name], name)
        self.window = int(spec["window"])
        self.error_scale = np.asarray(spec["error_scale"], dtype=np.float64)
        self.num_weights = np.asarray(spec["numeric_weights"], dtype=np.float64)
        self.vocab_sizes = [int(v) for v in spec["vocabulary_sizes"]]
        self.nll_scale = np.asarray(spec["nll_scale"], dtype=np.float64)
        self.cat_weights = np.asarray(spec["categorical_weights"], dtype=np.float64)
        self.never_seen = [np.asarray(c, dtype=np.int64) for c in spec["never_seen_codes"]]
        self.width = len(self.error_scale)
        self.sigma_min = float(spec["sigma_min"])
        self.frozen = np.asarray(spec.get("frozen_numeric", []), dtype=np.int64)
        self.frozen_values = np.asarray(spec.get("frozen_numeric_values", []), dtype=np.float64)
        columns = len(self.preprocessor.columns)
        self.numeric_grouping = grouping(column_owners(self.preprocessor)[: self.width], columns)
        self.numeric_count = len(self.preprocessor.numeric_columns)

    def empty_history(self) -> History:
        cats = len(self.vocab_sizes)
        return History(np.zeros(0, np.int64), np.zeros((0, self.width + 1), np.float32), np.zeros((0, cats), np.int32))

    def encode(self, arrays: list[pa.Array] | list[pa.ChunkedArray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(unclipped numeric block, network numeric input with padding channel, codes)."""
        num, codes = self.preprocessor.numeric_and_codes(arrays)
        return num, numeric_input(self.preprocessor, num), codes

    def explain_events(
        self, keys: np.ndarray, arrays: list[pa.Array] | list[pa.ChunkedArray], history: History, explain: bool = True
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, History]:
        """Scores for events in stream order and the history to carry to the next batch; with `explain`, also
        each input column's part of the surprise and the predicted numeric values."""
        num, x, codes = self.encode(arrays)
        all_keys = np.concatenate([history.keys, keys.astype(np.int64)])
        all_x, all_codes = np.concatenate([history.num, x]), np.concatenate([history.codes, codes])
        feeds = stream_windows(all_keys, all_x, all_codes, len(history.keys), self.window, self.width > 0)
        out = self.session.run(None, feeds)[0].astype(np.float64)
        keep = slice(max(0, len(all_keys) - self.window), None)
        carried = History(all_keys[keep], all_x[keep], all_codes[keep])
        sq, nll = self.parts(out, num, codes)
        scores = sq @ self.num_weights + (nll / self.nll_scale) @ self.cat_weights
        if not explain:
            return scores, None, None, carried
        column_parts = (sq * self.num_weights) @ self.numeric_grouping
        column_parts[:, self.numeric_count :] += (nll / self.nll_scale) * self.cat_weights
        expected = expected_values(self.preprocessor, out[:, : self.numeric_count])
        return scores, column_parts, expected, carried

    def parts(self, out: np.ndarray, num: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per event: the numeric features' scaled squared errors and each categorical column's NLL."""
        sq = np.square(numeric_z(num, out, self.width, self.sigma_min) / self.error_scale)
        if len(self.frozen):
            # Constant over the training sample (a missing indicator that never fired): scored by its
            # deviation alone, so it adds exact zero to a normal event instead of the network's noise.
            dev = (num[:, self.frozen] - self.frozen_values) / (self.sigma_min * self.error_scale[self.frozen])
            sq[:, self.frozen] = np.square(dev)
        nll = np.zeros((len(num), len(self.vocab_sizes)))
        offset, rows = 2 * self.width, np.arange(len(num))
        for j, size in enumerate(self.vocab_sizes):
            nll[:, j] = np.minimum(-out[rows, offset + codes[:, j]], NLL_CAP)
            nll[np.isin(codes[:, j], self.never_seen[j]), j] = NLL_CAP
            offset += size
        return sq, nll

    def surprise(self, out: np.ndarray, num: np.ndarray, codes: np.ndarray) -> np.ndarray:
        sq, nll = self.parts(out, num, codes)
        return sq @ self.num_weights + (nll / self.nll_scale) @ self.cat_weights

    def explain_stream(
        self, keys: np.ndarray, arrays: list[pa.Array] | list[pa.ChunkedArray], explain: bool = True
    ) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        """Driver side: (scores, column parts) of a whole ordered table, chunk by chunk in table order."""
        history = self.empty_history()
        for start in range(0, len(keys), STREAM_CHUNK):
            part = [a.slice(start, STREAM_CHUNK) for a in arrays]
            scores, parts, _, history = self.explain_events(keys[start : start + STREAM_CHUNK], part, history,
                                                            explain)
            yield scores, parts

    def score_stream(self, keys: np.ndarray, arrays: list[pa.Array] | list[pa.ChunkedArray]) -> np.ndarray:
        """Driver side: scores for a whole ordered table, in bounded chunks."""
        chunks = [scores for scores, _ in self.explain_stream(keys, arrays, explain=False)]
        return np.concatenate(chunks) if chunks else np.zeros(0)


def sequence_batch_scorer(
    key: str, payload: Any, percentile: bool = False, explain: int = 0, counting: Counting | None = None
) -> Callable[[Iterator[pa.StructArray]], Iterator[pa.Array]]:
    """The scoring UDF body: struct batches (stream key, context flag, features...) in stream order, scores out.

    With `percentile` or `explain`: a struct of score, percentile and reasons per event.
    A context row (true flag: a copy of an event that another block scores) is read as
    history and scored like the rest, and Spark drops its result; with `counting`, every
    other row's features are counted for drift, so each input event is counted once.

    One call per Spark task: the history starts empty for every partition, and
    every stream lies wholly inside one partition.
    """

    def score(batches: Iterator[pa.StructArray]) -> Iterator[pa.Array]:
        scorer = cached_scorer(key, lambda: unpack_payload(payload.value))
        assert isinstance(scorer, LstmScorer)
        history = scorer.empty_history()
        with counted(counting) as count:
            for batch in batches:
                arrays = batch.flatten()
                keys = arrays[0].to_numpy(zero_copy_only=False)
                scores, parts, expected, history = scorer.explain_events(keys, arrays[2:], history, explain > 0)
                results = scorer.package(scores, parts, expected, percentile, explain)
                if counting is not None:  # drift and flag counts: the events this block scores for the output
                    count(*own_events(arrays[1], arrays[2:], results))
                if percentile or explain:
                    yield result_struct(results, percentile, explain)
                else:
                    yield results[0]

    return score


def own_events(
    context: pa.Array, features: list[pa.Array], results: list[pa.Array]
) -> tuple[list[pa.Array], list[pa.Array]]:
    """The features and results of the rows that are not context rows (a context flag of true)."""
    if not pc.any(context).as_py():
        return features, results
    keep = pc.invert(pc.fill_null(context, False))
    return [a.filter(keep) for a in features], [a.filter(keep) for a in results]
