"""GAN detector: encoder-generator-discriminator with single-pass scoring.

Design (in the style of GANomaly and ALAD, adapted to nightly tabular scoring):

- Networks. An encoder E maps the clipped features x to a code z, a generator G
  maps codes back to feature space, and a discriminator D tells real rows from
  generated ones; its last hidden layer f(.) is the feature layer. E is the
  learned inverse of G, so scoring needs no per-row latent search (AnoGAN) and
  no random sampling: the score of x is a deterministic function of
  x, G(E(x)), f(x) and f(G(E(x))), one forward pass per row.
- Training (custom tf.GradientTape loop on the driver, `keras.utils.set_random_seed`
  plus a numpy generator seeded from `train.seed`, so a run is repeatable):
  D learns real x (label-smoothed to 0.9) against reconstructions G(E(x)) and
  samples G(z), z ~ N(0, I). E and G minimise
  ``rec + adversarial_weight * (fm + adv) + 0.1 * latent``, where rec is the
  mean squared error of G(E(x)) (or its Welsch loss, `model.loss`), fm
  is the per-row feature-matching distance |f(x) - f(G(E(x)))|^2 (GANomaly's
  adversarial loss), adv the non-saturating GAN loss of G(z), and latent a
  moment penalty pulling the codes of real rows towards N(0, I), so G's prior
  samples and the encoded rows live in the same region. Adam with beta_1 = 0.5,
  the usual GAN setting. The reconstruction term dominates by default
  (adversarial_weight 0.03): on tabular data a GAN term that dominates makes the
  encoder-generator pair unstable, while a small one sharpens the
  reconstructions and gives D features that separate realistic from
  unrealistic rows. 0.03 was chosen over 0.1 on the 22 tables of
  bench/quality.py (bench/README.md): level on the 13 tables (mean ROC-AUC
  0.867 against 0.866), higher on the nine image tables (0.908 against 0.880).
- Stopping without labels: after every epoch the validation split is scored by
  ``mse + adversarial_weight * fm``; the weights of the best epoch are kept and
  training stops after `train.patience` epochs without improvement. Training
  steps are capped by `model.max_steps` over all epochs (each epoch draws a fresh
  random subset), so 200k rows train in about a minute on two cores.
- Robustness to contaminated samples: after a warm-up of a quarter of the epochs,
  the `train.trim` fraction of rows worst reconstructed (each feature's error
  relative to its median error, as in the autoencoder) leaves the training set.
- Divergence: a non-finite loss in any epoch raises TrainingError, so no broken
  artifact is ever written.
- Score (computed by adspark.runtime.GanScorer in float64 numpy, outside the
  ONNX graph, so it does not depend on batching): the autoencoder's
  per-feature-scaled, column-weighted reconstruction error and the scaled
  feature-matching distance, each centred and scaled by its median and IQR on
  the training sample (frozen in the manifest, never refitted per batch), mixed
  as ``score_alpha * rec + (1 - score_alpha) * fm``. The reconstruction uses the
  unclipped features, so an extreme value still scores high; inputs constant over
  the training sample (an unseen or null bucket that never fired) are pinned to
  their training value at the network input, as for the autoencoder, so such a
  deviation is scored in full instead of half-reconstructed.
- Export: only the scoring subgraph (E, G and D's feature layer, one Keras model
  whose output is the concatenation [G(E(x)) | f(x) | f(G(E(x)))]) goes to ONNX;
  the graph is Dense layers, elementwise activations and one Concat.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from adspark.config import RowLoss
from adspark.errors import TrainingError
from adspark.models.autoencoder import default_hidden
from adspark.models.base import Detector, import_keras
from adspark.models.ensemble import fit_per_loss
from adspark.models.losses import batch_loss, network_losses
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
    FAMILY_STREAM,
    TrainSettings,
    export_onnx,
    seed_everything,
    split_rows,
    train,
)
from adspark.runtime import GanScorer

log = logging.getLogger("adspark.train")

ADAM_BETA_1 = 0.5  # the usual GAN setting: less momentum, fewer oscillations
REAL_LABEL = 0.9  # one-sided label smoothing keeps D from saturating
LATENT_WEIGHT = 0.1  # moment penalty pulling the codes of real rows towards N(0, I)
FM_SCALE_FLOOR = 1e-3  # a discriminator feature that barely moves is not amplified into noise


def default_gan_hidden(n_features: int) -> list[int]:
    """Encoder (and mirrored generator) sizes: the autoencoder's code, a first layer twice as wide.

    The generator needs more room than the autoencoder's decoder: on the test table
    (9 informative features) [9, 4] gave the injected outliers ROC-AUC 0.987, [18, 4] 0.998.
    """
    return [int(min(128, max(8, 2 * n_features))), default_hidden(n_features)[-1]]


def default_disc_hidden(n_features: int) -> list[int]:
    """Discriminator layer sizes; the last one is the feature layer used for scoring."""
    first = int(min(128, max(8, n_features)))
    return [first, int(min(64, max(4, first // 2)))]


@dataclass
class GanNetworks:
    encoder: Any
    generator: Any
    discriminator: Any  # x -> logit
    features: Any  # x -> f(x), D's last hidden layer
    scoring: Any  # x -> [G(E(x)) | f(x) | f(G(E(x)))], the only part exported

    @property
    def trainable_eg(self) -> list[Any]:
        return [*self.encoder.trainable_variables, *self.generator.trainable_variables]


def _dense_stack(keras: Any, inp: Any, sizes: list[int], activation: str, prefix: str) -> Any:
    h = inp
    for i, units in enumerate(sizes):
        h = keras.layers.Dense(units, activation=activation, name=f"{prefix}_{i}")(h)
    return h


def build_networks(
    n_features: int, hidden: list[int], latent: int, disc_hidden: list[int], activation: str
) -> GanNetworks:
    """E and G mirror each other around a linear code layer; D uses leaky_relu, as GANs usually do."""
    keras = import_keras()
    x_in = keras.Input((n_features,), name="x")
    h = _dense_stack(keras, x_in, hidden[:-1], activation, "enc")
    encoder = keras.Model(x_in, keras.layers.Dense(latent, name="code")(h), name="encoder")

    z_in = keras.Input((latent,), name="z")
    h = _dense_stack(keras, z_in, hidden[-2::-1], activation, "gen")
    generator = keras.Model(z_in, keras.layers.Dense(n_features, name="generated")(h), name="generator")

    d_in = keras.Input((n_features,), name="d_in")
    feat = _dense_stack(keras, d_in, disc_hidden, "leaky_relu", "disc")
    features = keras.Model(d_in, feat, name="disc_features")
    discriminator = keras.Model(d_in, keras.layers.Dense(1, name="logit")(feat), name="discriminator")

    inp = keras.Input((n_features,), name="features")
    recon = generator(encoder(inp))
    out = keras.layers.Concatenate(name="scoring_out")([recon, features(inp), features(recon)])
    scoring = keras.Model(inp, out, name="gan_scoring")
    return GanNetworks(encoder, generator, discriminator, features, scoring)


class GanFamily:
    """The two-player step (D, then E+G) and the label-free validation loss, for adspark.models.training."""

    loss_names: tuple[str, ...] = ("d_loss", "g_loss", "rec", "fm")
    trims = True

    def __init__(
        self,
        nets: GanNetworks,
        x: np.ndarray,
        latent: int,
        learning_rate: float,
        adversarial_weight: float,
        seed: int,
        loss: RowLoss = "mse",
    ) -> None:
        import tensorflow as tf

        keras = import_keras()
        self.nets, self.x, self.latent = nets, x, latent
        self.adv_weight, self.loss = adversarial_weight, loss
        self.rng = np.random.default_rng((seed, FAMILY_STREAM))  # the prior samples z
        self.opt_d = keras.optimizers.Adam(learning_rate, beta_1=ADAM_BETA_1)
        self.opt_g = keras.optimizers.Adam(learning_rate, beta_1=ADAM_BETA_1)
        self.opt_d.build(nets.discriminator.trainable_variables)
        self.opt_g.build(nets.trainable_eg)
        self.step = tf.function(self._step, reduce_retracing=True)

    def train_steps(self, batches: list[np.ndarray]) -> np.ndarray:
        z = self.rng.standard_normal((sum(len(b) for b in batches), self.latent)).astype(np.float32)
        out, start = [], 0
        for rows in batches:
            out.append(self.step(self.x[rows], z[start : start + len(rows)]))
            start += len(rows)
        return np.mean(np.stack([o.numpy() for o in out]), axis=0).astype(np.float64)

    def _step(self, x: Any, z: Any) -> Any:
        import tensorflow as tf

        n = self.nets
        bce = tf.nn.sigmoid_cross_entropy_with_logits
        with tf.GradientTape() as tape:
            x_hat = n.generator(n.encoder(x, training=True), training=True)
            x_gen = n.generator(z, training=True)
            real, fake, gen = (n.discriminator(v, training=True) for v in (x, x_hat, x_gen))
            loss_d = tf.reduce_mean(bce(tf.fill(tf.shape(real), REAL_LABEL), real)) + 0.5 * (
                tf.reduce_mean(bce(tf.zeros_like(fake), fake)) + tf.reduce_mean(bce(tf.zeros_like(gen), gen))
            )
        grads = tape.gradient(loss_d, n.discriminator.trainable_variables)
        self.opt_d.apply_gradients(zip(grads, n.discriminator.trainable_variables, strict=True))

        with tf.GradientTape() as tape:
            code = n.encoder(x, training=True)
            x_hat = n.generator(code, training=True)
            gen = n.discriminator(n.generator(z, training=True), training=True)
            rec = batch_loss(self.loss, tf.square(x - x_hat))
            fm = tf.reduce_mean(tf.square(n.features(x) - n.features(x_hat)))
            adv = tf.reduce_mean(bce(tf.ones_like(gen), gen))
            mean, var = tf.nn.moments(code, axes=[0])
            lat = tf.reduce_mean(tf.square(mean)) + tf.reduce_mean(tf.square(var - 1.0))
            loss_g = rec + self.adv_weight * (fm + adv) + LATENT_WEIGHT * lat
        grads = tape.gradient(loss_g, n.trainable_eg)
        self.opt_g.apply_gradients(zip(grads, n.trainable_eg, strict=True))
        return tf.stack([loss_d, loss_g, rec, fm])

    def validation_loss(self, rows: np.ndarray) -> float:
        """mse(x, G(E(x))) + adversarial_weight * feature-matching distance: needs no labels."""
        rec, fm = keras_components(self.nets, self.x[rows])
        return float(np.mean(rec) + self.adv_weight * np.mean(fm))

    def squared_errors(self, rows: np.ndarray) -> np.ndarray:
        recon = self.nets.scoring.predict(self.x[rows], batch_size=EVAL_BATCH, verbose=0)[:, : self.x.shape[1]]
        return np.square(self.x[rows] - recon)

    def get_weights(self) -> list[list[np.ndarray]]:
        return [net.get_weights() for net in (self.nets.encoder, self.nets.generator, self.nets.discriminator)]

    def set_weights(self, weights: list[list[np.ndarray]]) -> None:
        for net, w in zip((self.nets.encoder, self.nets.generator, self.nets.discriminator), weights, strict=True):
            net.set_weights(w)


def keras_components(nets: GanNetworks, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row mean squared reconstruction error and feature-matching distance, from the Keras nets."""
    out = nets.scoring.predict(x, batch_size=EVAL_BATCH, verbose=0).astype(np.float64)
    d = x.shape[1]
    k = (out.shape[1] - d) // 2
    rec = np.mean(np.square(x - out[:, :d]), axis=1)
    fm = np.mean(np.square(out[:, d : d + k] - out[:, d + k :]), axis=1)
    return rec, fm


def _spread(values: np.ndarray) -> tuple[float, float]:
    """Median and IQR (falling back to the std, then 1) of one score component."""
    q1, median, q3 = (float(v) for v in np.quantile(values, [0.25, 0.5, 0.75]))
    for candidate in (q3 - q1, float(np.std(values))):
        if math.isfinite(candidate) and candidate > 1e-12:
            return median, candidate
    return median, 1.0


class GanDetector(Detector):
    kind = "gan"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.networks_: GanNetworks | None = None

    # --- network ------------------------------------------------------------
    def _architecture(self, d: int) -> tuple[list[int], int, list[int]]:
        m = self.cfg.model
        hidden = list(m.hidden or default_gan_hidden(d))
        latent = m.latent or hidden[-1]
        hidden[-1] = latent
        return hidden, latent, list(m.disc_hidden or default_disc_hidden(2 * d))

    def _fit_network(self, features: np.ndarray) -> tuple[dict[str, Any], dict[str, bytes]]:
        losses = network_losses(self.cfg.model.row_loss())
        if len(losses) > 1:  # scores are centred (negative below the typical row): combined by rank
            return fit_per_loss(self, features, "rank")
        t, m = self.cfg.train, self.cfg.model
        x = self.preprocessor.network_input(features)
        d = x.shape[1]
        frozen = frozen_mask(x)
        hidden, latent, disc_hidden = self._architecture(informative_width(frozen))
        seed_everything(t.seed)
        nets = build_networks(d, hidden, latent, disc_hidden, m.activation)
        family = GanFamily(nets, x, latent, t.learning_rate, m.adversarial_weight, t.seed, losses[0])
        hint = "try a lower train.learning_rate or model.adversarial_weight"
        train_rows, val_rows = split_rows(len(x), t.validation_split, t.seed)
        settings = TrainSettings.from_config(self.cfg, "gan", hint=hint, epochs=t.epochs_for(len(train_rows)))
        result = train(family, train_rows, val_rows, settings)
        kept, info = result.kept, result.info
        self.networks_ = nets
        numeric = len(self.preprocessor.numeric_columns)
        softened, rare = knee_inputs(features, frozen, m.knee_features, m.typical_error, numeric)
        files = {"gan_scoring.onnx": export_onnx(nets.scoring, d)}
        spec = {
            "onnx_files": sorted(files),
            "hidden": hidden,
            "latent": latent,
            "disc_hidden": disc_hidden,
            "activation": m.activation,
            "score_alpha": m.score_alpha,
            "adversarial_weight": m.adversarial_weight,  # provenance only: the scorer does not read it
            "feature_weights": self.preprocessor.feature_weights_.tolist(),
            "frozen_inputs": np.flatnonzero(frozen).tolist(),
            "typical_error": m.typical_error,  # how error_scale was taken (provenance only)
            "loss": losses[0],  # the training loss of the reconstruction term (provenance only)
            "error_knee": m.error_knee,
            "softened_inputs": softened,
            "frozen_values": x[0, frozen].tolist(),
            **self._scales(nets, features, x, kept, frozen, rare),
        }
        spec["normalisation"] = self._normalisation(spec, files, features)
        self.training_ = info
        return spec, files

    def _scales(
        self,
        nets: GanNetworks,
        features: np.ndarray,
        x: np.ndarray,
        kept: np.ndarray,
        frozen: np.ndarray,
        rare: np.ndarray | None,
    ) -> dict[str, Any]:
        """Per-feature reconstruction error and per-D-feature distance on the kept rows (`rare`: knee_inputs)."""
        out = nets.scoring.predict(x[kept], batch_size=EVAL_BATCH, verbose=0).astype(np.float64)
        d = x.shape[1]
        k = (out.shape[1] - d) // 2
        recon = pin_frozen(out[:, :d], frozen, x[0, frozen])
        sq = typical_squared_error(
            np.square(features[kept] - recon), self.cfg.model.typical_error, rare, self.preprocessor.feature_weights_
        )
        err = error_scale(np.sqrt(sq), frozen)
        fm = np.sqrt(np.mean(np.square(out[:, d : d + k] - out[:, d + k :]), axis=0))
        fm_floor = max(FM_SCALE_FLOOR, 0.1 * float(np.median(fm)))
        return {"error_scale": err.tolist(), "fm_scale": np.maximum(fm, fm_floor).tolist()}

    def _normalisation(self, spec: dict[str, Any], files: dict[str, bytes], features: np.ndarray) -> dict[str, float]:
        """Median/IQR of each score component on the training sample, through the executors' onnxruntime path."""
        identity = {"rec_center": 0.0, "rec_spread": 1.0, "fm_center": 0.0, "fm_spread": 1.0}
        scorer = GanScorer(self._manifest_core({**spec, "normalisation": identity}), files)
        rec, fm = scorer.components(features)
        if not (np.all(np.isfinite(rec)) and np.all(np.isfinite(fm))):
            raise TrainingError("gan: the trained networks give non-finite errors; no artifact was written")
        rec_center, rec_spread = _spread(rec)
        fm_center, fm_spread = _spread(fm)
        return {"rec_center": rec_center, "rec_spread": rec_spread, "fm_center": fm_center, "fm_spread": fm_spread}
