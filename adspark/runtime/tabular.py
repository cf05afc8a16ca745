"""Executor-side scorers of the row-wise families that reconstruct their input: autoencoder and GAN."""

from __future__ import annotations

from typing import Any

import numpy as np

from adspark.runtime.base import Explanation, Scorer, column_owners, expected_values, grouping, onnx_session


def soften(squared: np.ndarray, knee: float | None, columns: np.ndarray | None = None) -> np.ndarray:
    """Squared scaled errors e^2, kept up to knee^2 and knee^2 * (1 + log(e^2 / knee^2)) beyond (in place).

    Each feature's error is in units of its typical training error. Without a knee,
    a feature that is rarely anything but its usual value (a pixel that is almost
    always blank, a flag that almost never fires) puts hundreds of squared units
    into a row's score whenever it moves, and rows where several features are off
    together rank below rows where one such feature moved. Beyond the knee a
    feature's part grows logarithmically: continuous, with a continuous slope, and
    still increasing, so a larger error always scores higher. On a continuous
    feature it would compress one strong error (a pair of columns far off its
    line) into the range of rows with several moderate ones, so by default only
    the rarely-moving features are softened (bench/README.md, "The error knee").
    `knee` None keeps the plain square (artifacts written before the knee
    existed); `columns` (a boolean mask) limits it to some features.
    """
    if knee is None:
        return squared
    k2 = knee * knee
    if columns is None:
        above = squared > k2
        squared[above] = k2 * (1.0 + np.log(squared[above] / k2))
        return squared
    which = np.flatnonzero(columns)
    if len(which):  # a table of continuous columns has none: nothing to do per batch
        squared[..., which] = soften(squared[..., which], knee)
    return squared


class ReconstructionScorer(Scorer):
    """Shared by the families that reconstruct their input: the network input and the error.

    Features constant over the training sample (an unseen-category or a
    missing-indicator bucket that never fired) carry no information for the
    network: it sees them at their training value, and the error compares them
    with that value, not with the network's output for them, so a deviation is
    scored in full and an unchanged value adds nothing (no output noise).
    """

    def __init__(self, manifest: dict[str, Any], files: dict[str, bytes]) -> None:
        super().__init__(manifest, files)
        spec = manifest["model"]
        self.error_scale = np.asarray(spec["error_scale"], dtype=np.float64)
        self.weights = np.asarray(spec["feature_weights"], dtype=np.float64)
        self.frozen = np.asarray(spec["frozen_inputs"], dtype=np.int64)
        self.frozen_values = np.asarray(spec["frozen_values"], dtype=np.float32)
        self.knee = spec.get("error_knee")
        # Which features the knee softens is decided at fit (models/reconstruction.py, softened_inputs). An
        # artifact written before that softens every feature but the frozen ones: a frozen feature that moves
        # (a category never seen in training, a null in a never-null column) is new, not rare.
        self.softened = np.zeros(len(self.error_scale), dtype=bool)
        if "softened_inputs" in spec:
            self.softened[np.asarray(spec["softened_inputs"], dtype=np.int64)] = True
        else:
            self.softened[:] = True
            self.softened[self.frozen] = False
        self.grouping = grouping(column_owners(self.preprocessor), len(self.preprocessor.columns))
        self.numeric_count = len(self.preprocessor.numeric_columns)

    def network_input(self, features: np.ndarray) -> np.ndarray:
        x = self.preprocessor.network_input(features)
        x[:, self.frozen] = self.frozen_values
        return x

    def reconstruction_error(self, features: np.ndarray, recon: np.ndarray) -> np.ndarray:
        """Per row: column-weighted squared error, each feature scaled by its training error."""
        return np.sum(self.error_parts(features, recon), axis=1)

    def error_parts(self, features: np.ndarray, recon: np.ndarray) -> np.ndarray:
        """Per row and feature: the weighted, softened, scaled squared error; its row sum is reconstruction_error.

        Pins the frozen features of `recon` (a float64 array the caller owns) to their training values.
        """
        recon[:, self.frozen] = self.frozen_values
        return soften(np.square((features - recon) / self.error_scale), self.knee, self.softened) * self.weights

    def explained(self, parts: np.ndarray, recon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Feature parts grouped to input columns, and the reconstructed numeric columns in input units."""
        return parts @ self.grouping, expected_values(self.preprocessor, recon[:, : self.numeric_count])


class AutoencoderScorer(ReconstructionScorer):
    """Weighted mean squared reconstruction error, each feature scaled by its training error.

    Weights give each input column an equal share (see Preprocessor.feature_weights_).

    The network returns only the reconstruction; the error and the mean over
    features are taken here in float64 with numpy, because onnxruntime's
    vectorised ReduceMean gives results that depend on a row's position in the
    batch, and scores must not depend on batching.
    """

    def __init__(self, manifest: dict[str, Any], files: dict[str, bytes]) -> None:
        super().__init__(manifest, files)
        spec = manifest["model"]
        self.sessions = [onnx_session(files[name], name) for name in spec["onnx_files"]]
        self.input_names = [s.get_inputs()[0].name for s in self.sessions]

    def score_features(self, features: np.ndarray) -> np.ndarray:
        return self.explain_features(features, explain=False)[0]

    def explain_features(self, features: np.ndarray, explain: bool = True) -> Explanation:
        x = self.network_input(features)
        total = np.zeros(len(features), dtype=np.float64)
        parts: np.ndarray | None = None
        recon_sum: np.ndarray | None = None
        for session, name in zip(self.sessions, self.input_names, strict=True):
            recon = session.run(None, {name: x})[0].astype(np.float64)
            err = self.error_parts(features, recon)
            total += np.sum(err, axis=1)
            if explain:  # the first network's arrays as they are: no zeroed copies to add them to
                parts = err if parts is None else parts + err
                recon_sum = recon if recon_sum is None else recon_sum + recon
        if parts is None or recon_sum is None:
            return total / len(self.sessions), None, None
        column_parts, expected = self.explained(parts, recon_sum / len(self.sessions))
        return total / len(self.sessions), column_parts, expected


class GanScorer(ReconstructionScorer):
    """Encoder-generator-discriminator (ALAD/GANomaly style) scored in one forward pass.

    The ONNX graph (Dense layers and elementwise activations only) maps the
    clipped features x to one matrix [G(E(x)) | f(x) | f(G(E(x)))], where f is the
    discriminator's feature layer. Everything else is float64 numpy here, so a
    row's score does not depend on its batch:
    - reconstruction: weighted sum of squared errors on the unclipped features,
      each scaled by its training error (as in AutoencoderScorer);
    - feature matching: mean squared distance between f(x) and f(G(E(x))), each
      discriminator feature scaled by its training distance;
    - score = alpha * (rec - rec_center) / rec_spread
      + (1 - alpha) * (fm - fm_center) / fm_spread, with the centres and
      spreads fitted once on the training sample and frozen in the manifest.
    """

    def __init__(self, manifest: dict[str, Any], files: dict[str, bytes]) -> None:
        super().__init__(manifest, files)
        spec = manifest["model"]
        name = spec["onnx_files"][0]
        self.session = onnx_session(files[name], name)
        self.input_name = self.session.get_inputs()[0].name
        self.fm_scale = np.asarray(spec["fm_scale"], dtype=np.float64)
        self.fm_weights = np.full(len(self.fm_scale), 1.0 / max(len(self.fm_scale), 1))
        norm = spec["normalisation"]
        self.alpha = float(spec["score_alpha"])
        self.rec_center, self.rec_spread = float(norm["rec_center"]), float(norm["rec_spread"])
        self.fm_center, self.fm_spread = float(norm["fm_center"]), float(norm["fm_spread"])

    def components(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw (reconstruction, feature-matching) errors per row, before normalisation."""
        rec, fm, _, _ = self._forward(features)
        return rec, fm

    def _forward(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(reconstruction error, feature-matching distance, per-feature error parts, reconstruction)."""
        out = self.session.run(None, {self.input_name: self.network_input(features)})[0].astype(np.float64)
        d, k = features.shape[1], len(self.fm_scale)
        recon, fx, fx_hat = out[:, :d], out[:, d : d + k], out[:, d + k :]
        parts = self.error_parts(features, recon)
        fm = np.sum(np.square((fx - fx_hat) / self.fm_scale) * self.fm_weights, axis=1)
        return np.sum(parts, axis=1), fm, parts, recon

    def _combine(self, rec: np.ndarray, fm: np.ndarray) -> np.ndarray:
        rec_n = (rec - self.rec_center) / self.rec_spread
        fm_n = (fm - self.fm_center) / self.fm_spread
        return self.alpha * rec_n + (1.0 - self.alpha) * fm_n

    def score_features(self, features: np.ndarray) -> np.ndarray:
        return self._combine(*self.components(features))

    def explain_features(self, features: np.ndarray) -> Explanation:
        """Shares from the reconstruction component: feature matching has no per-column split."""
        rec, fm, parts, recon = self._forward(features)
        column_parts, expected = self.explained(parts, recon)
        return self._combine(rec, fm), column_parts, expected
