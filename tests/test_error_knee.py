"""model.error_knee: a feature's squared error counts in full up to the knee, logarithmically beyond."""

import copy

import numpy as np
import pyarrow as pa
import pytest

from adspark.config import parse_config
from adspark.errors import ConfigError
from adspark.models.reconstruction import softened_inputs
from adspark.runtime import build_scorer
from adspark.runtime.base import column_owners
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


def test_softened_inputs_are_the_rarely_moving_numeric_features_that_moved_in_training() -> None:
    rng = np.random.default_rng(0)
    n = 1000
    features = np.column_stack([
        rng.normal(size=n),                                    # continuous: no ties
        np.where(rng.random(n) < 0.8, 0.0, rng.normal(size=n)),  # mostly 0: rare
        np.where(np.arange(n) < 490, 1.0, rng.normal(size=n)),   # 49% at one value: not rare
        np.where(np.arange(n) < 500, 1.0, rng.normal(size=n)),   # 50%: rare
        np.zeros(n),                                           # frozen: never softened
        (rng.random(n) < 0.3).astype(float),                   # a category bucket: a whole break, never rare
    ])
    frozen = np.array([False, False, False, False, True, False])
    assert softened_inputs(features, frozen, "rare", 5) == [1, 3]
    assert softened_inputs(features, frozen, "all", 5) == [0, 1, 2, 3, 5]
    assert softened_inputs(features[:0], frozen, "rare", 5) == [0, 1, 2, 3]  # an empty sample decides nothing


def _networks(manifest: dict) -> list[dict]:
    """The default autoencoder's networks (one per loss, model.loss: mse+welsch), each as a manifest of its own."""
    assert len(manifest["model"]["members"]) == 2
    return [{**manifest, "kind": n["kind"], "model": n["model"]} for n in manifest["model"]["members"]]


def test_the_default_knee_leaves_continuous_columns_and_categories_squared(small_detector) -> None:
    det, table = small_detector
    arrays = [table.column(c) for c in det.preprocessor.columns]
    for network in _networks(det.manifest_()):
        spec = network["model"]
        assert spec["error_knee"] == 1.5
        # the continuous numerics and the Poisson count (its mode holds about 22%) are not rare, and the
        # merchant buckets are categories: nothing on this transactions table is softened
        assert spec["softened_inputs"] == []
        default = build_scorer(network, det.files_).score_arrays(arrays)
        squared = copy.deepcopy(network)
        squared["model"]["error_knee"] = None
        # so the default scores exactly as squared errors, and the a/b break counts in full
        np.testing.assert_array_equal(build_scorer(squared, det.files_).score_arrays(arrays), default)


def test_the_default_knee_softens_a_mostly_zero_count(small_detector) -> None:
    from adspark.models import make_detector

    _, table = small_detector
    rng = np.random.default_rng(5)
    refunds = np.where(rng.random(table.num_rows) < 0.9, 0.0, rng.exponential(40.0, table.num_rows))
    refunds[:3] = [5000.0, 8000.0, 12000.0]  # three rows with an extreme refund
    table = table.append_column("refunds", pa.array(refunds))
    numeric = ["amount", "a", "b", "count", "refunds"]
    cfg = parse_config({"train": {"epochs": 8, "seed": 0, "patience": 3, "batch_size": 32, "min_steps": 0}})
    det = make_detector(cfg, numeric, ["merchant"]).fit(table)
    owners = column_owners(det.preprocessor)
    arrays = [table.column(c) for c in det.preprocessor.columns]
    for network in _networks(det.manifest_()):
        softened = network["model"]["softened_inputs"]
        assert [det.preprocessor.columns[owners[i]] for i in softened] == ["refunds"]
        default = build_scorer(network, det.files_).score_arrays(arrays)
        squared = copy.deepcopy(network)
        squared["model"]["error_knee"] = None
        plain = build_scorer(squared, det.files_).score_arrays(arrays)
        assert np.all(default <= plain)
        lowered = default < plain
        assert lowered[:3].all() and lowered.sum() < len(plain)
        # softened, an extreme refund is still an outlier, but no longer outweighs everything else by orders of
        # magnitude
        assert np.all(default[:3] > np.quantile(default, 0.95))
        assert plain[:3].min() / np.median(plain) > 10 * (default[:3].min() / np.median(default))


def test_an_artifact_without_the_knee_keys_scores_as_it_did(small_detector) -> None:
    det, table = small_detector
    arrays = [table.column(c) for c in det.preprocessor.columns]
    for network in _networks(det.manifest_()):
        plain = copy.deepcopy(network)
        plain["model"]["error_knee"] = None
        squared = build_scorer(plain, det.files_).score_arrays(arrays)
        older = copy.deepcopy(network)
        del older["model"]["error_knee"], older["model"]["softened_inputs"]  # written before either key existed
        np.testing.assert_array_equal(build_scorer(older, det.files_).score_arrays(arrays), squared)
        # a knee without the list (written before the list existed) softens every feature but the frozen ones
        kneed = copy.deepcopy(older)
        kneed["model"]["error_knee"] = 2.0
        scorer = build_scorer(kneed, det.files_)
        frozen = np.zeros(len(scorer.softened), dtype=bool)
        frozen[network["model"]["frozen_inputs"]] = True
        np.testing.assert_array_equal(scorer.softened, ~frozen)
        softened = scorer.score_arrays(arrays)
        assert np.all(squared >= softened)
        lowered = squared > softened
        assert 0 < lowered.sum() < len(squared)
        assert np.max(squared) > 3 * np.max(softened)


def test_error_knee_config() -> None:
    model = parse_config({}).model
    assert model.error_knee == 1.5 and model.knee_features == "rare"
    assert parse_config({"model": {"error_knee": 2}}).model.error_knee == 2.0
    assert parse_config({"model": {"error_knee": None}}).model.error_knee is None
    assert parse_config({"model": {"knee_features": "all"}}).model.knee_features == "all"
    with pytest.raises(ConfigError, match="error_knee"):
        parse_config({"model": {"error_knee": 0}})
    with pytest.raises(ConfigError, match="knee_features"):
        parse_config({"model": {"knee_features": "some"}})
