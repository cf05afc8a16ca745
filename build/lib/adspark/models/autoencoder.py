"""Dense autoencoder scored by per-feature-normalised reconstruction error.

Robust defaults, because nightly tables are heavy-tailed and already contain the
anomalies we look for:
- features are robust-scaled (median/IQR), heavy-tailed columns log-compressed,
  and the network sees them clipped to +-clip, while the score uses the unclipped
  values, so an extreme value still scores high;
- training is trimmed: after a warm-up, the `train.trim` fraction of the sample
  with the worst reconstruction (each feature's error relative to its median
  error) is dropped, so the net does not learn to reconstruct the anomalies;
- each feature's error is divided by its typical training error, so one noisy
  column cannot drown out the rest.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from adspark.errors import TrainingError
from adspark.models.base import Detector, import_keras

log = logging.getLogger("adspark.train")

# Trimming compares squared errors relative to each feature's median squared error;
# the floor keeps a feature the net reconstructs perfectly from dividing by zero.
TRIM_ERROR_FLOOR = 1e-6


def default_hidden(n_features: int) -> list[int]:
    """Encoder layer sizes down to the code layer, mirrored by the decoder."""
    first = int(min(128, max(8, n_features)))
    code = int(max(2, min(32, n_features // 4)))
    return [first, code]


def build_autoencoder(n_features: int, hidden: list[int], activation: str, learning_rate: float) -> Any:
    keras = import_keras()
    inp = keras.Input((n_features,), name="features")
    h = inp
    layers = hidden + hidden[-2::-1]
    for i, units in enumerate(layers):
        is_code = i == len(hidden) - 1
        h = keras.layers.Dense(units, activation=None if is_code else activation, name=f"dense_{i}")(h)
    out = keras.layers.Dense(n_features, name="reconstruction")(h)
    model = keras.Model(inp, out, name="autoencoder")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mse")
    return model


def export_onnx(model: Any, n_features: int) -> bytes:
    """The network as ONNX bytes, via Keras 3's own exporter (tf2onnx underneath)."""
    return export_onnx_inputs(model, [np.zeros((2, n_features), dtype=np.float32)])


def export_onnx_inputs(model: Any, example: list[np.ndarray]) -> bytes:
    """As export_onnx, for a model with several inputs (ONNX input names = the Keras Input names)."""
    model(example if len(example) > 1 else example[0])  # the exporter needs a built, called model
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        model.export(str(path), format="onnx", verbose=False)
        return path.read_bytes()


class _EpochLog:
    """Builds a Keras callback that logs one line per epoch (Keras' own bar is off)."""

    @staticmethod
    def make(label: str, total: int) -> Any:
        keras = import_keras()

        def on_epoch_end(epoch: int, logs: dict[str, float] | None = None) -> None:
            logs = logs or {}
            parts = " ".join(f"{k}={v:.5f}" for k, v in logs.items() if isinstance(v, float))
            log.info("%s epoch %d/%d %s", label, epoch + 1, total, parts)

        return keras.callbacks.LambdaCallback(on_epoch_end=on_epoch_end)


class AutoencoderDetector(Detector):
    kind = "autoencoder"

    def _fit_network(self, features: np.ndarray) -> tuple[dict[str, Any], dict[str, bytes]]:
        keras = import_keras()
        t = self.cfg.train
        x = self.preprocessor.network_input(features)
        n, d = x.shape
        frozen = np.all(x == x[:1], axis=0) if n else np.zeros(d, dtype=bool)  # constant over the sample
        order = np.random.default_rng(t.seed).permutation(n)
        n_val = int(n * t.validation_split) if n * t.validation_split >= 8 else 0
        val_idx, tr_idx = order[:n_val], order[n_val:]
        hidden = self.cfg.model.hidden or default_hidden(d)
        files: dict[str, bytes] = {}
        sq_err = np.zeros(d)
        summary: list[dict[str, Any]] = []
        for member in range(self.cfg.model.ensemble):
            keras.utils.set_random_seed(t.seed + member)
            model = build_autoencoder(d, hidden, self.cfg.model.activation, t.learning_rate)
            kept, info = self._train(model, x, tr_idx, val_idx, f"autoencoder[{member}]")
            recon = model.predict(x[kept], batch_size=8192, verbose=0).astype(np.float64)
            sq_err += np.mean(np.square(features[kept] - recon), axis=0)
            files[f"autoencoder_{member}.onnx"] = export_onnx(model, d)
            summary.append(info)
        scale = np.sqrt(sq_err / self.cfg.model.ensemble)
        floor = max(1e-2, 0.1 * float(np.median(scale)))
        spec = {
            "onnx_files": sorted(files),
            "hidden": hidden,
            "activation": self.cfg.model.activation,
            "error_scale": np.maximum(scale, floor).tolist(),
            "feature_weights": self.preprocessor.feature_weights_.tolist(),
            "frozen_inputs": np.flatnonzero(frozen).tolist(),
            "frozen_values": x[0, frozen].tolist() if n else [],
        }
        self.training_ = {"members": summary}
        return spec, files

    def _train(
        self, model: Any, x: np.ndarray, tr_idx: np.ndarray, val_idx: np.ndarray, label: str
    ) -> tuple[np.ndarray, dict[str, Any]]:
        t = self.cfg.train
        warmup = max(1, t.epochs // 4) if t.trim > 0 else 0
        history: list[float] = []
        if warmup:
            history += self._epochs(model, x[tr_idx], x[val_idx], 0, warmup, label)
            tr_idx = self._trim(model, x, tr_idx)
            val_idx = self._trim(model, x, val_idx) if len(val_idx) else val_idx
        history += self._epochs(model, x[tr_idx], x[val_idx], warmup, t.epochs, label)
        if not history or not np.all(np.isfinite(history)):
            raise TrainingError(f"{label}: the training loss diverged (NaN or inf); no artifact was written")
        info = {"epochs_run": len(history), "final_loss": float(history[-1]), "trimmed_rows": len(x) - len(tr_idx)}
        return tr_idx, info

    def _trim(self, model: Any, x: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """Drop the `train.trim` fraction of rows worst reconstructed by the warmed-up net.

        Each feature's squared error is divided by its median over the rows first, so
        the rows dropped are those unusual for the columns that are otherwise well
        reconstructed, not simply the rows of the noisiest column (the same idea as
        the per-feature error scale of the score).
        """
        sq = np.square(x[idx] - model.predict(x[idx], batch_size=8192, verbose=0)).astype(np.float64)
        err = np.mean(sq / np.maximum(np.median(sq, axis=0), TRIM_ERROR_FLOOR), axis=1)
        return idx[err <= np.quantile(err, 1.0 - self.cfg.train.trim)]

    def _epochs(
        self, model: Any, x_tr: np.ndarray, x_val: np.ndarray, first: int, last: int, label: str
    ) -> list[float]:
        keras = import_keras()
        t = self.cfg.train
        monitor = "val_loss" if len(x_val) else "loss"
        callbacks = [
            keras.callbacks.TerminateOnNaN(),
            keras.callbacks.EarlyStopping(monitor=monitor, patience=t.patience, restore_best_weights=True),
            _EpochLog.make(label, t.epochs),
        ]
        hist = model.fit(
            x_tr,
            x_tr,
            batch_size=t.batch_size,
            initial_epoch=first,
            epochs=last,
            validation_data=(x_val, x_val) if len(x_val) else None,
            shuffle=True,
            verbose=0,
            callbacks=callbacks,
        )
        return [float(v) for v in hist.history.get("loss", [])]
