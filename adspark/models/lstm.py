"""LSTM next-event model for event streams and time series (`model.kind: lstm`).

An event is scored by how badly the events before it in its stream predict it
(DeepLog's next-event prediction, extended to numeric values). The network reads
the `model.window` previous events (numeric block clipped, plus one learned
embedding per categorical column, plus a padding flag for short histories) and
outputs, for the event itself, a Gaussian (mean and spread) per numeric feature,
given the event's own categories, and a log-probability for every code of every
categorical column. See adspark/runtime/sequence.py for
how those turn into a score.

Why next-event prediction and not an LSTM autoencoder over the window: a window
autoencoder spreads one odd event over `window` reconstructions and scores it
`window` times, once per window that contains it; the predictor scores each
event once, against its own history, so the spike or the impossible transition
is the top-scored event itself (measured in bench/quality.py, see README).

The training table is a sample of whole stream pieces (adspark/sequences.py), in
stream order, with a stream key column; the windows are built exactly as on the
executors (adspark.runtime.sequence.stream_windows).
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import numpy as np
import pyarrow as pa

from adspark.decisions import flag
from adspark.errors import TrainingError
from adspark.models.base import Detector, import_keras
from adspark.models.reconstruction import frozen_mask
from adspark.models.training import (
    EVAL_BATCH,
    KerasFamily,
    TrainSettings,
    export_onnx,
    seed_everything,
    split_rows,
    take,
    train,
)
from adspark.runtime import Scorer
from adspark.runtime.sequence import (
    NLL_CAP,
    NUMERIC_INPUT,
    SIGMA_MIN,
    STREAM_COL,
    LstmScorer,
    categorical_input,
    current_input,
    numeric_input,
    numeric_z,
    stream_windows,
)

log = logging.getLogger("adspark.train")

# A categorical column whose values are near-deterministic given the history has
# a tiny typical NLL; the floor keeps an ordinary wobble from scoring like an
# impossible event (an event at NLL_CAP scores NLL_CAP / 0.5 = 40 at most).
NLL_SCALE_FLOOR = 0.5
VALIDATION_CAP = 20_000


def embedding_size(vocabulary: int) -> int:
    """fastai's rule of thumb, capped: enough to separate a few hundred event types."""
    return int(min(16, max(2, round(1.6 * vocabulary**0.56))))


def build_lstm(window: int, width: int, vocab: list[int], hidden: list[int], activation: str) -> tuple[Any, Any]:
    """(training model with one output per target, scoring model with one concatenated output)."""
    keras = import_keras()
    num_in = keras.Input((window, width + 1), name=NUMERIC_INPUT)
    cat_in = [keras.Input((window,), name=categorical_input(j), dtype="int32") for j in range(len(vocab))]
    now_in = [keras.Input((1,), name=current_input(j), dtype="int32") for j in range(len(vocab))]
    embed = [keras.layers.Embedding(v, embedding_size(v), name=f"embed_{j}") for j, v in enumerate(vocab)]
    parts = [num_in] + [e(c) for e, c in zip(embed, cat_in, strict=True)]
    h = keras.layers.Concatenate(name="event")(parts) if len(parts) > 1 else num_in
    for i, units in enumerate(hidden):
        h = keras.layers.LSTM(units, return_sequences=i < len(hidden) - 1, name=f"lstm_{i}")(h)
    train_out, score_out = [], []
    if width:
        # The numeric head also sees the event's own categories: a latency is judged
        # against what the history predicts for this event type, not for any event.
        pairs = enumerate(zip(embed, now_in, strict=True))
        now = [keras.layers.Flatten(name=f"event_type_{j}")(e(c)) for j, (e, c) in pairs]
        hn = keras.layers.Concatenate(name="with_event_type")([h, *now]) if now else h
        hn = keras.layers.Dense(max(16, hidden[-1]), activation=activation, name="numeric_head")(hn)
        pred = keras.layers.Dense(2 * width, name="numeric")(hn)  # [mean | raw spread] per feature
        train_out.append(pred)
        score_out.append(pred)
    hc = keras.layers.Dense(max(16, hidden[-1]), activation=activation, name="category_head")(h)
    for j, v in enumerate(vocab):
        logits = keras.layers.Dense(v, name=f"logits_{j}")(hc)
        train_out.append(logits)
        score_out.append(keras.layers.Activation("log_softmax", name=f"logp_{j}")(logits))
    inputs: Any = [num_in, *cat_in, *(now_in if width else [])]
    inputs = inputs if len(inputs) > 1 else num_in  # a one-input model takes a bare tensor, not a list
    scoring = keras.Model(inputs, keras.layers.Concatenate(name="out")(score_out) if len(score_out) > 1
                          else score_out[0], name="lstm_scoring")
    return keras.Model(inputs, train_out, name="lstm"), scoring


def gaussian_nll(y_true: Any, y_pred: Any) -> Any:
    """Squared error for the means, plus the Gaussian NLL of the spreads around the (frozen) means.

    Stopping the gradient of the means in the NLL term keeps the mean fit exactly
    as a plain regression would make it; the spread only learns how far off it is.
    """
    ops = import_keras().ops
    width = ops.shape(y_true)[-1]
    mean = y_pred[:, :width]
    spread = ops.softplus(y_pred[:, width:]) + SIGMA_MIN
    nll = 0.5 * ops.square((y_true - ops.stop_gradient(mean)) / spread) + ops.log(spread)
    return ops.mean(ops.square(y_true - mean) + nll, axis=-1)


def model_input(feeds: dict[str, np.ndarray]) -> Any:
    """What Keras expects: the bare array for a one-input model, else the inputs by name."""
    return feeds[NUMERIC_INPUT] if len(feeds) == 1 else feeds


class LstmDetector(Detector):
    kind = "lstm"

    def __init__(self, cfg: Any, numeric: list[str], categorical: list[str]) -> None:
        super().__init__(cfg, numeric, categorical)
        self.preprocessor.onehot_max = 0  # categoricals become embedding codes, never one-hot

    def _streams(self, table: pa.Table) -> tuple[np.ndarray, list[pa.ChunkedArray]]:
        if STREAM_COL not in table.column_names:
            raise TrainingError(f"the LSTM needs events in stream order with a {STREAM_COL!r} key column")
        return table.column(STREAM_COL).to_numpy(), self._arrays(table)

    def _score_table(self, scorer: Scorer, table: pa.Table) -> np.ndarray:
        assert isinstance(scorer, LstmScorer)
        return scorer.score_stream(*self._streams(table))

    def first_reasons(self, table: pa.Table, scores: np.ndarray) -> dict[str, int] | None:
        """As for the row-wise kinds, with each event's reasons computed in its stream's order and history."""
        scorer, threshold = self._fitted()
        if threshold is None:
            return None
        assert isinstance(scorer, LstmScorer)
        above, counts, start = flag(scores, threshold), Counter[str](), 0
        for chunk, parts in scorer.explain_stream(*self._streams(table)):
            rows = above[start : start + len(chunk)]
            start += len(chunk)
            if parts is not None and rows.any():
                counts.update(self._first_reason_counts(parts[rows]))
        return dict(counts)

    def _fit_table(self, table: pa.Table) -> tuple[dict[str, Any], dict[str, bytes]]:
        keys, arrays = self._streams(table)
        pre = self.preprocessor
        num, codes = pre.numeric_and_codes(arrays)
        width, window = num.shape[1], self.cfg.model.window
        feeds = stream_windows(keys, numeric_input(pre, num), codes, 0, window, with_current=width > 0)
        assert pre.categorical_ is not None
        vocab = [s.vocabulary_size for s in pre.categorical_]
        hidden = self.cfg.model.hidden or [32]
        seed_everything(self.cfg.train.seed)  # before building: seeds the initial weights
        training, scoring = build_lstm(window, width, vocab, hidden, self.cfg.model.activation)
        targets = ([num.astype(np.float32)] if width else []) + [codes[:, j] for j in range(len(vocab))]
        info = self._train(training, feeds, targets, width)
        out = scoring.predict(model_input(feeds), batch_size=EVAL_BATCH, verbose=0).astype(np.float64)
        spec = self._score_spec(out, num, codes, vocab, window, hidden)
        files = {"lstm.onnx": export_onnx(scoring, self._example_feeds(window, width, len(vocab)))}
        self.training_ = {"windows": len(keys), "streams": len(np.unique(keys)), **info}
        self.network_ = scoring  # the Keras graph behind lstm.onnx, kept for parity checks
        return spec, files

    @staticmethod
    def _example_feeds(window: int, width: int, cats: int) -> list[np.ndarray]:
        now = [np.zeros((2, 1), np.int32)] * cats if width else []
        return [np.zeros((2, window, width + 1), np.float32)] + [np.zeros((2, window), np.int32)] * cats + now

    def _score_spec(
        self, out: np.ndarray, num: np.ndarray, codes: np.ndarray, vocab: list[int], window: int, hidden: list[int]
    ) -> dict[str, Any]:
        """Error scales and weights frozen from the training predictions."""
        width = num.shape[1]
        frozen = frozen_mask(num)
        z = numeric_z(num, out, width, SIGMA_MIN)
        scale = np.sqrt(np.mean(np.square(z), axis=0)) if width else np.zeros(0)
        floor = max(1e-2, 0.1 * float(np.median(scale))) if width else 1.0
        nll, never_seen, offset = [], [], 2 * width
        for j, v in enumerate(vocab):
            logp = out[np.arange(len(codes)), offset + codes[:, j]]
            nll.append(max(NLL_SCALE_FLOOR, float(np.mean(np.minimum(-logp, NLL_CAP)))))
            never_seen.append(np.flatnonzero(np.bincount(codes[:, j], minlength=v) == 0).tolist())
            offset += v
        # Equal share per input column, as for the autoencoder; with no one-hot, each
        # categorical column's share is the sum over its four (other/unseen/null/rarity) features.
        weights = self.preprocessor.feature_weights_
        cat_w = weights[width:].reshape(len(vocab), -1).sum(axis=1) if vocab else np.zeros(0)
        num_w = weights[:width]
        return {
            "onnx_files": ["lstm.onnx"],
            "window": window,
            "hidden": hidden,
            "activation": self.cfg.model.activation,
            "error_scale": np.maximum(scale, floor).tolist(),  # of the standardised errors
            "sigma_min": SIGMA_MIN,
            "frozen_numeric": np.flatnonzero(frozen).tolist(),
            "frozen_numeric_values": num[0, frozen].tolist() if len(num) else [],
            "numeric_weights": num_w.tolist(),
            "vocabulary_sizes": vocab,
            "nll_scale": nll,
            "categorical_weights": cat_w.tolist(),
            "never_seen_codes": never_seen,
        }

    def _train(self, model: Any, feeds: dict[str, np.ndarray], targets: list[np.ndarray], width: int) -> dict[str, Any]:
        keras = import_keras()
        t = self.cfg.train
        losses = ([gaussian_nll] if width else []) + [keras.losses.SparseCategoricalCrossentropy(from_logits=True)] * (
            len(targets) - (1 if width else 0)
        )
        model.compile(optimizer=keras.optimizers.Adam(t.learning_rate, clipnorm=1.0), loss=losses)
        train_rows, val_rows = split_rows(len(targets[0]), t.validation_split, t.seed, cap=VALIDATION_CAP)
        settings = TrainSettings.from_config(self.cfg, "lstm", trim=0.0)  # every event is scored against its history
        inputs = take(feeds)
        family = KerasFamily(model, lambda rows: model_input(inputs(rows)), take(targets), t.batch_size)
        info = train(family, train_rows, val_rows, settings).info
        per_epoch = min(len(train_rows), info["steps_per_epoch"] * t.batch_size)
        return {**info, "windows_per_epoch": per_epoch}
