import numpy as np
import pytest

from adspark.errors import TrainingError
from adspark.thresholds import fit_threshold, flag


def test_contamination_is_the_upper_quantile() -> None:
    scores = np.arange(1000, dtype=float)
    thr = fit_threshold("contamination", 0.01, scores)
    assert thr == pytest.approx(np.quantile(scores, 0.99))
    assert flag(scores, thr).sum() == 10


def test_fixed_threshold_and_strictness() -> None:
    assert fit_threshold("fixed", 3.2, np.array([1.0])) == 3.2
    np.testing.assert_array_equal(flag(np.array([3.1, 3.2, 3.3]), 3.2), [False, False, True])


def test_non_finite_training_scores_are_refused() -> None:
    with pytest.raises(TrainingError):
        fit_threshold("contamination", 0.1, np.array([1.0, np.nan]))
