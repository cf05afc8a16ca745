"""Executor-side scorer of the isolation forest (`model.kind: iforest`): onnxruntime and numpy only.

The ONNX graph (built by adspark.models.iforest) returns, per row, the float64
path length of the row in every tree. The score is scikit-learn's
``-score_samples``: ``2 ** (-sum of path lengths / (trees * c(max_samples)))``,
summed and normalised here in float64, so a row's score does not depend on its
batch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from adspark.runtime.base import Scorer, onnx_session

FEATURES_INPUT = "features"
DEPTHS_OUTPUT = "path_lengths"


class ForestScorer(Scorer):
    def __init__(self, manifest: dict[str, Any], files: dict[str, bytes]) -> None:
        super().__init__(manifest, files)
        spec = manifest["model"]
        name = spec["onnx_files"][0]
        self.session = onnx_session(files[name], name)
        self.denominator = int(spec["n_estimators"]) * float(spec["average_path_length"])

    def score_features(self, features: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(features, dtype=np.float32)
        depths = self.session.run([DEPTHS_OUTPUT], {FEATURES_INPUT: x})[0]
        return np.exp2(-np.sum(depths, axis=1, dtype=np.float64) / self.denominator)
