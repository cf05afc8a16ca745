"""Threshold methods and the frozen training-score distribution (adspark.decisions)."""

import json
import math

import numpy as np
import pytest

from adspark.decisions import ScoreSummary, decide, fit_gpd, fit_threshold, flag, top_k_flags
from adspark.errors import TrainingError


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


def test_mad_is_median_plus_scaled_mad() -> None:
    scores = np.random.default_rng(0).normal(10.0, 2.0, 50_000)
    med = np.median(scores)
    mad = np.median(np.abs(scores - med))
    assert fit_threshold("mad", 3.0, scores) == pytest.approx(med + 3.0 * 1.4826 * mad)
    assert fit_threshold("mad", 3.0, scores) == pytest.approx(16.0, rel=0.02)  # mean + 3 sd of N(10, 2)


def test_pot_on_an_exponential_tail() -> None:
    scores = np.random.default_rng(1).exponential(1.0, 100_000)
    thr = fit_threshold("pot", 1e-4, scores)
    assert abs(thr - math.log(1e4)) / math.log(1e4) < 0.10, thr


def test_pot_on_a_pareto_tail() -> None:
    alpha, q = 3.0, 1e-4
    scores = np.random.default_rng(2).pareto(alpha, 100_000) + 1.0  # P(X > x) = x^-3 for x >= 1
    thr = fit_threshold("pot", q, scores)
    true = q ** (-1.0 / alpha)
    assert abs(thr - true) / true < 0.15, (thr, true)


def test_gpd_fit_recovers_shapes_near_zero_and_negative() -> None:
    rng = np.random.default_rng(3)
    shape, scale, _ = fit_gpd(rng.exponential(2.0, 5000))
    assert abs(shape) < 0.05 and scale == pytest.approx(2.0, rel=0.05)
    short = rng.uniform(0.0, 1.0, 5000)  # GPD with shape -1: a hard upper end
    shape, scale, _ = fit_gpd(short)
    assert shape < -0.5
    summary = ScoreSummary.from_scores(rng.uniform(0.0, 1.0, 20_000))
    assert summary.tail is not None and decide("pot", 1e-4, summary).threshold <= 1.0 + 1e-3


def test_pot_that_cannot_be_fitted_is_an_error() -> None:
    with pytest.raises(TrainingError, match="at least 10 training scores"):
        fit_threshold("pot", 1e-3, np.random.default_rng(0).normal(size=200))
    with pytest.raises(TrainingError, match="threshold.value"):
        fit_threshold("pot", 0.05, np.random.default_rng(0).normal(size=10_000))
    with pytest.raises(TrainingError, match="excesses"):
        fit_gpd(np.zeros(50))


def test_summary_round_trips_and_refits_every_method() -> None:
    scores = np.random.default_rng(4).gamma(2.0, 1.0, 30_000)
    summary = ScoreSummary.from_scores(scores)
    frozen = ScoreSummary.from_state(json.loads(json.dumps(summary.to_state())))
    assert len(frozen.quantiles) >= 1000
    for method, value in [("contamination", 0.01), ("mad", 4.0), ("pot", 1e-3), ("fixed", 2.0)]:
        assert decide(method, value, frozen).threshold == decide(method, value, summary).threshold
    # upper quantiles are exact (the top scores are kept), lower ones within the grid's resolution
    assert frozen.quantile(0.99) == pytest.approx(np.quantile(scores, 0.99), rel=1e-12)
    assert frozen.quantile(0.5) == pytest.approx(np.quantile(scores, 0.5), rel=1e-3)
    with pytest.raises(TrainingError, match="threshold.level"):
        frozen.fit_tail(0.6)  # needs more of the sample than the kept top 5%


def test_percentiles_are_shares_below_and_stay_under_one() -> None:
    rng = np.random.default_rng(5)
    train = rng.exponential(1.0, 50_000)
    summary = ScoreSummary.from_scores(train)
    fresh = rng.exponential(1.0, 20_000)
    pct = summary.percentile(fresh)
    empirical = np.searchsorted(np.sort(train), fresh) / train.size
    assert np.mean(np.abs(pct - empirical)) < 0.002
    beyond = np.array([train.max(), train.max() + 1, train.max() + 5, train.max() + 20])
    p = summary.percentile(beyond)
    assert np.all(np.diff(p) > 0) and np.all(p < 1.0)
    assert summary.percentile(np.array([-1.0]))[0] == 0.0


def test_top_k_flags_exactly_k_with_ties_by_position() -> None:
    scores = np.array([1.0, 5.0, 5.0, 3.0, 5.0])
    np.testing.assert_array_equal(top_k_flags(scores, 2), [False, True, True, False, False])
