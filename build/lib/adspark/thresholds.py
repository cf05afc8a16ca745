"""Decision thresholds on anomaly scores."""

from __future__ import annotations

import numpy as np

from adspark.errors import TrainingError


def fit_threshold(method: str, value: float, train_scores: np.ndarray) -> float:
    """`contamination`: the (1 - value) quantile of the training-sample scores; `fixed`: `value`."""
    if method == "fixed":
        return float(value)
    if method != "contamination":
        raise ValueError(f"unknown threshold method {method!r}")
    scores = np.asarray(train_scores, dtype=np.float64)
    if scores.size == 0 or not np.all(np.isfinite(scores)):
        raise TrainingError("cannot set a contamination threshold: training scores are empty or not finite")
    return float(np.quantile(scores, 1.0 - value))


def flag(scores: np.ndarray, threshold: float) -> np.ndarray:
    """A row is anomalous when its score is strictly above the threshold."""
    return np.asarray(scores) > threshold
