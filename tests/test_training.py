"""The one training loop (adspark/models/training.py): schedule, early stopping, trimming, NaN guard, step caps."""

from __future__ import annotations

import numpy as np
import pytest

from adspark.config import parse_config
from adspark.errors import TrainingError
from adspark.models import DETECTORS, KINDS, detector_class
from adspark.models.training import TrainSettings, split_rows, train, trim_rows


class FakeFamily:
    """A family with a scripted validation loss; records every batch it is handed."""

    loss_names: tuple[str, ...] = ("loss",)

    def __init__(self, val_losses: list[float], trims: bool = False, n_features: int = 3) -> None:
        self.val_losses, self.trims, self.n_features = val_losses, trims, n_features
        self.batches: list[list[np.ndarray]] = []
        self.weights = 0  # "weights" = number of epochs trained

    def train_steps(self, batches: list[np.ndarray]) -> np.ndarray:
        self.batches.append(batches)
        self.weights += 1
        return np.array([self.val_losses[len(self.batches) - 1]])

    def validation_loss(self, rows: np.ndarray) -> float:
        return self.val_losses[len(self.batches) - 1]

    def squared_errors(self, rows: np.ndarray) -> np.ndarray:
        err = np.ones((len(rows), self.n_features))
        err[rows % 10 == 0] = 100.0  # every tenth row is badly reconstructed
        return err

    def get_weights(self) -> int:
        return self.weights

    def set_weights(self, weights: int) -> None:
        self.weights = weights


def _settings(**kw: object) -> TrainSettings:
    base = {"label": "fake", "epochs": 8, "batch_size": 10, "patience": 2, "trim": 0.0, "seed": 3}
    return TrainSettings(**{**base, **kw})  # type: ignore[arg-type]


def test_early_stopping_keeps_the_best_epoch() -> None:
    family = FakeFamily([5.0, 3.0, 1.0, 2.0, 4.0, 0.5, 0.1, 0.1])
    result = train(family, np.arange(95), np.arange(95, 100), _settings())
    assert result.info["epochs_run"] == 5 and result.info["best_epoch"] == 3  # patience 2 after the best
    assert family.weights == 3  # the best epoch's weights restored
    sizes = [len(b) for b in family.batches[0]]
    assert sizes == [10] * 9 + [5]  # every training row once per epoch, the last batch short
    assert sorted(np.concatenate(family.batches[0]).tolist()) == list(range(95))


def test_step_cap_and_fresh_rows_each_epoch() -> None:
    family = FakeFamily([1.0] * 4)
    train(family, np.arange(1000), np.arange(0), _settings(epochs=4, max_steps=12, patience=10))
    assert [len(b) for b in family.batches] == [3] * 4  # 12 steps over 4 epochs
    first, second = (np.concatenate(b) for b in family.batches[:2])
    assert len(set(first.tolist())) == 30 and not np.array_equal(first, second)


def test_trimming_after_the_warmup_drops_the_worst_rows() -> None:
    family = FakeFamily([1.0] * 8, trims=True)
    result = train(family, np.arange(100), np.arange(100, 120), _settings(trim=0.1, patience=10))
    assert result.info["trimmed_rows"] == 12  # the rows ending in 0, in training and validation
    assert not np.any(result.kept % 10 == 0) and len(result.kept) == 90
    assert len(np.concatenate(family.batches[1])) == 100 and len(np.concatenate(family.batches[2])) == 90


def test_non_finite_loss_raises_training_error() -> None:
    family = FakeFamily([1.0, float("nan"), 1.0])
    with pytest.raises(TrainingError, match=r"fake: the training loss diverged \(NaN or inf\) in epoch 2.*no artifact"):
        train(family, np.arange(50), np.arange(0), _settings(epochs=3))


def test_split_and_trim_helpers() -> None:
    tr, val = split_rows(100, 0.1, seed=1)
    assert len(val) == 10 and sorted(np.concatenate([tr, val]).tolist()) == list(range(100))
    assert np.array_equal(split_rows(100, 0.1, seed=1)[1], val)  # seeded
    assert len(split_rows(50, 0.1, seed=1)[1]) == 0  # 5 validation rows are noise: none
    assert len(split_rows(10_000, 0.5, seed=1, cap=100)[1]) == 100
    sq = np.ones((10, 2))
    sq[3] = [50.0, 1.0]
    assert 3 not in trim_rows(sq, np.arange(10), 0.1)


def test_every_kind_is_one_registry_line() -> None:
    assert set(KINDS) == set(DETECTORS)
    for kind in KINDS:
        assert detector_class(kind).kind == kind
    with pytest.raises(ValueError, match="unknown model kind 'nope'"):
        detector_class("nope")


def test_step_caps_per_kind() -> None:
    assert parse_config({"model": {"kind": "gan"}}).model.step_cap() == 8000
    assert parse_config({}).model.step_cap() is None  # the autoencoder sees every row every epoch
    assert parse_config({"model": {"max_steps": 50}}).model.step_cap() == 50


def test_onnx_export_in_a_fresh_process_prints_no_library_warnings() -> None:
    """Keras' bundled tf2onnx warns about `np.object` when first imported, i.e. in a user's first fit."""
    import subprocess
    import sys

    code = ("from adspark.models.base import import_keras\n"
            "from adspark.models.training import export_onnx\n"
            "keras = import_keras()\n"
            "model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])\n"
            "print(len(export_onnx(model, 3)) > 0)\n")  # fmt: skip
    proc = subprocess.run([sys.executable, "-W", "default", "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "True", proc.stderr[-2000:]
    assert "Warning" not in proc.stderr.replace("WARNING: All log messages", ""), proc.stderr[-2000:]
