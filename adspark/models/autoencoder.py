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
  column cannot drown out the rest;
- by default (`model.loss: mse+welsch`) two networks train, one on the squared
  error and one on its Welsch loss, and the score is the geometric mean of their
  errors (adspark/models/ensemble.py, fit_per_loss): the first learns the spread
  of the normal rows, the second learns less of a large group of anomalies.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from adspark.config import RowLoss
from adspark.models.base import Detector, import_keras
from adspark.models.ensemble import fit_per_loss
from adspark.models.losses import keras_loss, network_losses
from adspark.models.reconstruction import (
    error_scale,
    frozen_mask,
    informative_width,
    knee_inputs,
    pin_frozen,
    typical_squared_error,
)
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


def default_hidden(n_features: int) -> list[int]:
    """Encoder layer sizes down to the code layer, mirrored by the decoder.

    `n_features` counts the informative features (not the frozen ones). The code
    layer has half as many units (2 to 32): a quarter was measured on the shared
    tables too (bench/defaults.py) and lost 0.008 mean ROC-AUC.
    """
    first = int(min(128, max(8, n_features)))
    code = int(max(2, min(32, n_features // 2)))
    return [first, code]


def build_autoencoder(
    n_features: int,
    hidden: list[int],
    activation: str,
    learning_rate: float,
    dropout: float = 0.0,
    batch_norm: bool = False,
    loss: RowLoss = "mse",
) -> Any:
    """Dense encoder down to a linear code layer, mirrored decoder, linear output.

    Every other hidden layer is Dense -> (batch norm) -> activation -> (dropout); inference-time
    batch norm is a per-feature affine map and dropout the identity, so the ONNX graph stays plain.
    """
    keras = import_keras()
    inp = keras.Input((n_features,), name="features")
    h = inp
    layers = hidden + hidden[-2::-1]
    for i, units in enumerate(layers):
        if i == len(hidden) - 1:  # the code layer
            h = keras.layers.Dense(units, name=f"dense_{i}")(h)
            continue
        if not batch_norm and not dropout:
            h = keras.layers.Dense(units, activation=activation, name=f"dense_{i}")(h)
            continue
        h = keras.layers.Dense(units, name=f"dense_{i}")(h)
        if batch_norm:
            h = keras.layers.BatchNormalization(momentum=0.9, name=f"batch_norm_{i}")(h)
        h = keras.layers.Activation(activation, name=f"activation_{i}")(h)
        if dropout:
            h = keras.layers.Dropout(dropout, name=f"dropout_{i}")(h)
    out = keras.layers.Dense(n_features, name="reconstruction")(h)
    model = keras.Model(inp, out, name="autoencoder")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=keras_loss(loss))
    return model


class AutoencoderDetector(Detector):
    kind = "autoencoder"

    def _fit_network(self, features: np.ndarray) -> tuple[dict[str, Any], dict[str, bytes]]:
        losses = network_losses(self.cfg.model.row_loss())
        if len(losses) > 1:  # errors are positive and on one unit: their geometric mean keeps both in it
            return fit_per_loss(self, features, "geometric")
        t = self.cfg.train
        x = self.preprocessor.network_input(features)
        n, d = x.shape
        frozen = frozen_mask(x)
        pinned = x[0, frozen] if n else np.zeros(0, dtype=x.dtype)  # the frozen features' training values
        train_rows, val_rows = split_rows(n, t.validation_split, t.seed)
        m = self.cfg.model
        hidden = m.hidden or default_hidden(informative_width(frozen))
        files: dict[str, bytes] = {}
        sq_err = np.zeros(d)
        softened, rare = knee_inputs(
            features, frozen, m.knee_features, m.typical_error, len(self.preprocessor.numeric_columns)
        )
        summary: list[dict[str, Any]] = []
        for member in range(self.cfg.model.ensemble):
            seed_everything(t.seed + member)
            model = build_autoencoder(d, hidden, m.activation, t.learning_rate, m.dropout, m.batch_norm, losses[0])
            family = KerasFamily(model, take(x), take(x), t.batch_size, errors=_squared_errors(model, x))
            label = f"autoencoder[{member}]"
            settings = TrainSettings.from_config(self.cfg, label, epochs=t.epochs_for(len(train_rows)))
            result = train(family, train_rows, val_rows, settings)
            recon = model.predict(x[result.kept], batch_size=EVAL_BATCH, verbose=0).astype(np.float64)
            pin_frozen(recon, frozen, pinned)
            sq_err += typical_squared_error(
                np.square(features[result.kept] - recon), m.typical_error, rare, self.preprocessor.feature_weights_
            )
            files[f"autoencoder_{member}.onnx"] = export_onnx(model, d)
            summary.append(result.info)
        scale = error_scale(np.sqrt(sq_err / self.cfg.model.ensemble), frozen)
        spec = {
            "onnx_files": sorted(files),
            "hidden": hidden,
            "activation": self.cfg.model.activation,
            "error_scale": scale.tolist(),
            "feature_weights": self.preprocessor.feature_weights_.tolist(),
            "frozen_inputs": np.flatnonzero(frozen).tolist(),
            "typical_error": self.cfg.model.typical_error,  # how error_scale was taken (provenance only)
            "loss": losses[0],  # the training loss (provenance only)
            "error_knee": self.cfg.model.error_knee,
            "softened_inputs": softened,
            "frozen_values": pinned.tolist(),
        }
        self.training_ = {"members": summary}
        return spec, files


def _squared_errors(model: Any, x: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """Rows -> their per-feature squared reconstruction error on the network input (for trimming)."""
    return lambda rows: np.square(x[rows] - model.predict(x[rows], batch_size=EVAL_BATCH, verbose=0))
