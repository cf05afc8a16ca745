"""Executor-side scoring: onnxruntime sessions built from artifact bytes.

Imported on executors, so it needs only numpy, pyarrow and onnxruntime (never
TensorFlow or pydantic). One scorer is cached per Python worker process and
keyed by the artifact digest, like mlflow's per-worker model cache: Spark reuses
Python workers across tasks (spark.python.worker.reuse), so the ONNX graph is
parsed once per worker, not once per task or batch.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from adspark.errors import ArtifactError
from adspark.features import Preprocessor

_CACHE: dict[str, Scorer] = {}
_LOCK = threading.Lock()


def _session(model_bytes: bytes, name: str) -> Any:
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


class ReconstructionScorer(Scorer):
    """Shared by the families that reconstruct their input: the network input and the error.

    Features constant over the training sample (an unseen-category or a
    missing-indicator bucket that never fired) carry no information for the
    network: it sees them at their training value, so any deviation is scored in
    full by the error term instead of half-reconstructed.
    """

    def __init__(self, manifest: dict[str, Any], files: dict[str, bytes]) -> None:
        super().__init__(manifest, files)
        spec = manifest["model"]
        self.error_scale = np.asarray(spec["error_scale"], dtype=np.float64)
        self.weights = np.asarray(spec["feature_weights"], dtype=np.float64)
        self.frozen = np.asarray(spec["frozen_inputs"], dtype=np.int64)
        self.frozen_values = np.asarray(spec["frozen_values"], dtype=np.float32)

    def network_input(self, features: np.ndarray) -> np.ndarray:
        x = self.preprocessor.network_input(features)
        x[:, self.frozen] = self.frozen_values
        return x

    def reconstruction_error(self, features: np.ndarray, recon: np.ndarray) -> np.ndarray:
        """Per row: column-weighted squared error, each feature scaled by its training error."""
        return np.sum(np.square((features - recon) / self.error_scale) * self.weights, axis=1)


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
        self.sessions = [_session(files[name], name) for name in spec["onnx_files"]]
        self.input_names = [s.get_inputs()[0].name for s in self.sessions]

    def score_features(self, features: np.ndarray) -> np.ndarray:
        x = self.network_input(features)
        total = np.zeros(len(features), dtype=np.float64)
        for session, name in zip(self.sessions, self.input_names, strict=True):
            recon = session.run(None, {name: x})[0].astype(np.float64)
            total += self.reconstruction_error(features, recon)
        return total / len(self.sessions)


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
        self.session = _session(files[name], name)
        self.input_name = self.session.get_inputs()[0].name
        self.fm_scale = np.asarray(spec["fm_scale"], dtype=np.float64)
        self.fm_weights = np.full(len(self.fm_scale), 1.0 / max(len(self.fm_scale), 1))
        norm = spec["normalisation"]
        self.alpha = float(spec["score_alpha"])
        self.rec_center, self.rec_spread = float(norm["rec_center"]), float(norm["rec_spread"])
        self.fm_center, self.fm_spread = float(norm["fm_center"]), float(norm["fm_spread"])

    def components(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw (reconstruction, feature-matching) errors per row, before normalisation."""
        out = self.session.run(None, {self.input_name: self.network_input(features)})[0].astype(np.float64)
        d, k = features.shape[1], len(self.fm_scale)
        recon, fx, fx_hat = out[:, :d], out[:, d : d + k], out[:, d + k :]
        rec = self.reconstruction_error(features, recon)
        fm = np.sum(np.square((fx - fx_hat) / self.fm_scale) * self.fm_weights, axis=1)
        return rec, fm

    def score_features(self, features: np.ndarray) -> np.ndarray:
        rec, fm = self.components(features)
        rec_n = (rec - self.rec_center) / self.rec_spread
        fm_n = (fm - self.fm_center) / self.fm_spread
        return self.alpha * rec_n + (1.0 - self.alpha) * fm_n


SCORERS: dict[str, type[Scorer]] = {"autoencoder": AutoencoderScorer, "gan": GanScorer}
# The sequence scorer lives in its own module, which builds on this one.
KNOWN_KINDS = (*SCORERS, "lstm")


def scorer_class(kind: str) -> type[Scorer]:
    if kind == "lstm":
        from adspark.sequence_runtime import LstmScorer

        return LstmScorer
    return SCORERS[kind]


def build_scorer(manifest: dict[str, Any], files: dict[str, bytes]) -> Scorer:
    kind = manifest.get("kind")
    if not isinstance(kind, str) or kind not in KNOWN_KINDS:
        raise ArtifactError(f"manifest.json: unknown model kind {kind!r} (known: {', '.join(KNOWN_KINDS)})")
    return scorer_class(kind)(manifest, files)


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
        for i, batch in enumerate(batches):
            scores = scorer.score_arrays(batch.flatten())
            yield pa.array(scores, type=pa.float64())
            if i == 0:
                inject_fault()

    return score


FAULT_ENV = "ADSPARK_FAULT_INJECTION"


def inject_fault() -> None:
    """Test hook: fail the task of partition 0 after its first batch.

    ADSPARK_FAULT_INJECTION=first_attempt fails only the first attempt (a retry
    succeeds); =always fails every attempt. Unset in production.
    """
    mode = os.environ.get(FAULT_ENV)
    if not mode:
        return
    from pyspark import TaskContext

    ctx = TaskContext.get()
    if ctx is not None and ctx.partitionId() == 0 and (mode == "always" or ctx.attemptNumber() == 0):
        raise RuntimeError(f"injected fault ({FAULT_ENV}={mode}, attempt {ctx.attemptNumber()})")
