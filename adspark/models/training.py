"""One training loop for every deep family (autoencoder, GAN, LSTM).

The loop owns everything that is not a network or a loss:
- seeding (`seed_everything`: Python, numpy and TensorFlow from `train.seed`,
  with TensorFlow's deterministic ops, so the same config and input give the
  same weights);
- the validation split (`split_rows`), taken once from the seed;
- the batch schedule: each epoch draws a fresh random permutation of the
  training rows, cut into `train.batch_size` batches and capped at
  `model.max_steps` steps over all epochs (the GAN and LSTM have a cap by
  default, the autoencoder only when it is set);
- trimming: after a warm-up of a quarter of the epochs, the `train.trim`
  fraction of rows worst reconstructed (each feature's squared error relative
  to its median over the rows) leaves the training and validation sets;
- early stopping on the label-free validation loss, keeping the weights of the
  best epoch, with `train.patience` epochs of patience after the warm-up;
- the NaN guard: a non-finite loss raises TrainingError, so no broken artifact
  is ever written;
- one log line per epoch.

A family provides a `Family`: `train_steps` runs one optimiser step per batch
of row indices it is handed (the GAN with its own two-player step; the others
through `KerasFamily`, which hands each epoch's rows to Keras' compiled `fit`),
`validation_loss`, weights to keep and restore, and, if it trims, the
per-feature squared errors of some rows.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from adspark.config import JobConfig
from adspark.errors import TrainingError
from adspark.models.base import import_keras

log = logging.getLogger("adspark.train")

# Independent numpy streams derived from train.seed: split_rows uses the seed alone.
BATCH_STREAM = 1  # the batch schedule
FAMILY_STREAM = 2  # a family's own draws (the GAN's prior samples)
MIN_VALIDATION_ROWS = 8  # a smaller validation set is noise: monitor the training rows instead
EVAL_BATCH = 8192
# Trimming compares squared errors relative to each feature's median squared error;
# the floor keeps a feature the net reconstructs perfectly from dividing by zero.
TRIM_ERROR_FLOOR = 1e-6


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and TensorFlow; call before building a network (it seeds the initial weights).

    TensorFlow's deterministic ops are switched on too (process-wide, once), so two
    runs of the same config on the same input and machine train the same weights
    and export byte-identical ONNX files.
    """
    import_keras().utils.set_random_seed(seed)
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()


def split_rows(n: int, fraction: float, seed: int, cap: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(training rows, validation rows): a seeded random `fraction` (at most `cap`) held out."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = int(n * fraction) if n * fraction >= MIN_VALIDATION_ROWS else 0
    if cap is not None:
        n_val = min(n_val, cap)
    return order[n_val:], order[:n_val]


def trim_rows(sq_err: np.ndarray, rows: np.ndarray, fraction: float) -> np.ndarray:
    """`rows` without the `fraction` worst reconstructed, given their per-feature squared errors.

    Each feature's error is divided by its median over the rows first, so the rows
    dropped are those unusual for the columns that are otherwise well
    reconstructed, not simply the rows of the noisiest column.
    """
    if len(rows) == 0 or fraction <= 0:
        return rows
    sq = np.asarray(sq_err, dtype=np.float64)
    err = np.mean(sq / np.maximum(np.median(sq, axis=0), TRIM_ERROR_FLOOR), axis=1)
    return rows[err <= np.quantile(err, 1.0 - fraction)]


class Family(Protocol):
    """What a deep family gives the trainer: its step, its validation loss and its weights."""

    loss_names: tuple[str, ...]
    trims: bool  # drops its worst-reconstructed rows after the warm-up (needs squared_errors)

    def train_steps(self, batches: list[np.ndarray]) -> np.ndarray:
        """One optimiser step per batch of row indices, in order; returns the mean of each loss term."""
        ...

    def validation_loss(self, rows: np.ndarray) -> float: ...

    def squared_errors(self, rows: np.ndarray) -> np.ndarray:
        """Per-row, per-feature squared reconstruction error, for trimming."""
        ...

    def get_weights(self) -> Any: ...

    def set_weights(self, weights: Any) -> None: ...


@dataclass(frozen=True)
class TrainSettings:
    label: str
    epochs: int
    batch_size: int
    patience: int
    trim: float
    seed: int
    max_steps: int | None = None  # over all epochs; None = every row every epoch
    hint: str = "try a lower train.learning_rate"

    @classmethod
    def from_config(cls, cfg: JobConfig, label: str, **overrides: Any) -> TrainSettings:
        t = cfg.train
        base = {"epochs": t.epochs, "batch_size": t.batch_size, "patience": t.patience, "trim": t.trim,
                "seed": t.seed, "max_steps": cfg.model.step_cap()}  # fmt: skip
        return cls(label=label, **{**base, **overrides})

    def steps_per_epoch(self, n_train: int) -> int:
        full = max(1, math.ceil(n_train / self.batch_size))
        return full if self.max_steps is None else max(1, min(full, self.max_steps // self.epochs))


@dataclass
class TrainResult:
    kept: np.ndarray  # the training rows left after trimming
    info: dict[str, Any] = field(default_factory=dict)


def train(family: Family, train_rows: np.ndarray, val_rows: np.ndarray, s: TrainSettings) -> TrainResult:
    """Train `family` on `train_rows`, early-stopped on `val_rows`; the best epoch's weights are kept."""
    rng = np.random.default_rng((s.seed, BATCH_STREAM))
    n_before = len(train_rows) + len(val_rows)
    trims = s.trim > 0 and s.epochs > 1 and family.trims
    warmup = max(1, s.epochs // 4) if trims else 0
    steps = s.steps_per_epoch(len(train_rows))
    best, best_weights, best_epoch, wait, epoch = math.inf, family.get_weights(), 0, 0, 0
    losses = np.zeros(len(family.loss_names))
    curves: dict[str, list[float]] = {name: [] for name in (*family.loss_names, "val")}  # for the model report
    for epoch in range(s.epochs):
        if warmup and epoch == warmup:
            train_rows, val_rows = _trim(family, train_rows, s.trim), _trim(family, val_rows, s.trim)
            best, wait = math.inf, 0  # the validation set changed: losses before are not comparable
            steps = s.steps_per_epoch(len(train_rows))
        rows = rng.permutation(train_rows)[: steps * s.batch_size]  # the last batch may be short
        losses = np.asarray(family.train_steps([rows[i : i + s.batch_size] for i in range(0, len(rows), s.batch_size)]))
        monitor = family.validation_loss(val_rows if len(val_rows) else train_rows[:EVAL_BATCH])
        if not (np.all(np.isfinite(losses)) and math.isfinite(monitor)):
            raise TrainingError(
                f"{s.label}: the training loss diverged (NaN or inf) in epoch {epoch + 1}; "
                f"no artifact was written ({s.hint})"
            )
        for name, value in zip(curves, (*losses, monitor), strict=True):
            curves[name].append(float(value))
        parts = " ".join(f"{k}={v:.5f}" for k, v in zip(family.loss_names, losses, strict=True))
        log.info("%s epoch %d/%d %s val=%.5f", s.label, epoch + 1, s.epochs, parts, monitor)
        if monitor < best:
            best, best_weights, best_epoch, wait = monitor, family.get_weights(), epoch + 1, 0
        else:
            wait += 1
            if wait >= s.patience and epoch >= warmup:
                break
    family.set_weights(best_weights)
    info = {
        "epochs_run": epoch + 1,
        "best_epoch": best_epoch,
        "steps_per_epoch": steps,
        "best_validation_loss": best,
        "final_losses": {k: float(v) for k, v in zip(family.loss_names, losses, strict=True)},
        "trimmed_rows": n_before - len(train_rows) - len(val_rows),
        "curves": curves,
    }
    return TrainResult(train_rows, info)


def _trim(family: Family, rows: np.ndarray, fraction: float) -> np.ndarray:
    if len(rows) == 0:
        return rows
    return trim_rows(family.squared_errors(rows), rows, fraction)


Rows = Callable[[np.ndarray], Any]  # row indices -> the model's inputs (or targets) for those rows


def take(data: Any) -> Rows:
    """Row indexing for an array, a list of arrays or a dict of named arrays (a Keras model's inputs)."""
    if isinstance(data, dict):
        return lambda rows: {k: v[rows] for k, v in data.items()}
    if isinstance(data, list | tuple):
        return lambda rows: [v[rows] for v in data]
    return lambda rows: data[rows]


class KerasFamily:
    """A compiled Keras model (its own loss and optimiser) driven by the trainer's schedule.

    The rows of one epoch's steps go to Keras' compiled `fit` as one epoch, in row
    order, and Keras shuffles them into batches (seeded by `seed_everything`): the
    trainer decides which rows an epoch sees and how many steps it takes, Keras
    their order, at Keras' own speed. (This is how the families trained before
    they shared this loop; their tests pin scores that depend on it.)
    """

    loss_names: tuple[str, ...] = ("loss",)

    def __init__(
        self,
        model: Any,
        inputs: Rows,
        targets: Rows,
        batch_size: int,
        errors: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        self.model, self.inputs, self.targets, self.batch_size, self.errors = model, inputs, targets, batch_size, errors
        self.trims = errors is not None

    def train_steps(self, batches: list[np.ndarray]) -> np.ndarray:
        rows = np.sort(np.concatenate(batches))
        hist = self.model.fit(
            self.inputs(rows), self.targets(rows), batch_size=self.batch_size, epochs=1, shuffle=True, verbose=0
        )
        return np.array([hist.history["loss"][-1]], dtype=np.float64)

    def validation_loss(self, rows: np.ndarray) -> float:
        result = self.model.evaluate(self.inputs(rows), self.targets(rows), batch_size=EVAL_BATCH, verbose=0)
        return float(result[0] if isinstance(result, list) else result)  # the total over all outputs

    def squared_errors(self, rows: np.ndarray) -> np.ndarray:
        if self.errors is None:
            raise TypeError("this family does not trim")
        return self.errors(rows)

    def get_weights(self) -> list[np.ndarray]:
        return list(self.model.get_weights())

    def set_weights(self, weights: list[np.ndarray]) -> None:
        self.model.set_weights(weights)


def export_onnx(model: Any, example: int | np.ndarray | Sequence[np.ndarray]) -> bytes:
    """A Keras model as ONNX bytes, via Keras 3's own exporter (tf2onnx underneath).

    `example`: one input batch per model input (ONNX input names = the Keras Input
    names), or an int, the width of a model's single float32 matrix input.
    """
    import tempfile
    import warnings
    from pathlib import Path

    if isinstance(example, int):
        example = [np.zeros((2, example), dtype=np.float32)]
    elif isinstance(example, np.ndarray):
        example = [example]
    batch = list(example)
    model(batch if len(batch) > 1 else batch[0])  # the exporter needs a built, called model
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        # Keras' bundled tf2onnx probes `np.object` on import: a FutureWarning about its code, not the model's.
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"keras\.src\.export")
        path = Path(tmp) / "model.onnx"
        model.export(str(path), format="onnx", verbose=False)
        return path.read_bytes()
