"""model.error_knee: a feature's squared error counts in full up to the knee, logarithmically beyond."""

import copy

import numpy as np
import pytest

from adspark.config import parse_config
from adspark.errors import ConfigError
from adspark.runtime import build_scorer
from adspark.runtime.tabular import soften


def test_soften_keeps_squares_below_the_knee_and_grows_logarithmically_beyond() -> None:
    sq = np.array([0.0, 1.0, 3.99, 4.0, 4.01, 16.0, 1e4, 1e12])
    out = soften(sq.copy(), 2.0)
    np.testing.assert_array_equal(out[:4], sq[:4])
    assert out[5] == pytest.approx(4.0 * (1.0 + np.log(4.0)))
    assert out[7] == pytest.approx(4.0 * (1.0 + np.log(2.5e11)))  # 1e12 squared units count as about 110
    assert np.all(np.diff(out) > 0)  # still increasing: a larger error always scores higher
    eps = 1e-6
    below, at, above = soften(np.array([4.0 - eps, 4.0, 4.0 + eps]), 2.0)
    assert (at - below) / eps == pytest.approx(1.0, rel=1e-5) and (above - at) / eps == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_array_equal(soften(sq.copy(), None), sq)
    rows = np.array([[100.0, 100.0, 1.0]])
    np.testing.assert_array_equal(soften(rows, 2.0, np.array([True, False, True])),
                                  [[4.0 * (1.0 + np.log(25.0)), 100.0, 1.0]])


def test_the_knee_is_in_the_manifest_and_an_artifact_without_it_scores_plain_squares(small_detector) -> None:
    det, table = small_detector
    manifest = det.manifest_()
    assert manifest["model"]["error_knee"] is None  # the default: squared throughout
    arrays = [table.column(c) for c in det.preprocessor.columns]
    plain = build_scorer(manifest, det.files_).score_arrays(arrays)
    older = copy.deepcopy(manifest)
    del older["model"]["error_knee"]  # written before the key existed
    np.testing.assert_array_equal(build_scorer(older, det.files_).score_arrays(arrays), plain)
    kneed = copy.deepcopy(manifest)
    kneed["model"]["error_knee"] = 2.0
    softened = build_scorer(kneed, det.files_).score_arrays(arrays)
    # softening only lowers the parts beyond the knee: some rows drop, none rise, rows within it stay
    assert np.all(plain >= softened)
    lowered = plain > softened
    assert 0 < lowered.sum() < len(plain)
    assert np.max(plain) > 3 * np.max(softened)


def test_error_knee_config() -> None:
    assert parse_config({}).model.error_knee is None
    assert parse_config({"model": {"error_knee": 2}}).model.error_knee == 2.0
    with pytest.raises(ConfigError, match="error_knee"):
        parse_config({"model": {"error_knee": 0}})
