"""model.typical_error: the per-feature training error each feature's error is divided by."""

import importlib

import numpy as np
import pyarrow as pa
import pytest

from adspark.config import parse_config
from adspark.errors import ConfigError
from adspark.models import make_detector, reconstruction
from adspark.models.reconstruction import UNIT_SHRINK, knee_inputs, softened_inputs, typical_squared_error


def test_typical_squared_error_is_the_mean_or_the_median() -> None:
    sq = np.array([[1.0, 0.0], [4.0, 0.0], [9.0, 0.0], [100.0, 4.0]])
    np.testing.assert_array_equal(typical_squared_error(sq, "rms"), [28.5, 1.0])
    np.testing.assert_array_equal(typical_squared_error(sq, "median"), [6.5, 0.0])


def test_trimmed_leaves_the_worst_rows_out_and_shrinks_a_unit_at_most_unit_shrink_fold() -> None:
    rng = np.random.default_rng(0)
    noise = rng.normal(size=(2000, 4))
    contaminated = noise[:, :2].copy()
    contaminated[:200] += 5.0  # a tenth of the rows off in two features at once: anomalies in the sample
    spiky = noise[:, 2].copy()
    spiky[200:260] *= 100.0  # 3% of the rows with one wild miss: a spike column
    sq = np.square(np.column_stack([contaminated, spiky, noise[:, 3]]))
    rms = typical_squared_error(sq, "rms")
    trimmed = typical_squared_error(sq, "trimmed")
    clean = np.mean(np.square(noise[200:, :2]), axis=0)
    # the anomalies leave the average: the unit is the normal rows' error, not the mean they inflate
    np.testing.assert_allclose(trimmed[:2], clean, rtol=0.15)
    assert np.all(rms[:2] > 3 * clean)
    # the spike rows are trimmed too, but their column keeps a fifth of its mean square
    assert trimmed[2] == pytest.approx(rms[2] / UNIT_SHRINK)
    assert trimmed[3] == pytest.approx(rms[3], rel=0.3)  # plain noise: about the mean
    # the weights say what "overall" is: a feature weighted 0 no longer decides which rows leave
    weighted = typical_squared_error(sq, "trimmed", weights=np.array([1.0, 1.0, 0.0, 1.0]))
    assert weighted[2] > 0.5 * rms[2]
    np.testing.assert_allclose(weighted[:2], clean, rtol=0.15)


def test_auto_takes_the_median_only_where_many_rows_miss_by_far() -> None:
    rng = np.random.default_rng(0)
    noise = rng.normal(size=(1000, 5))
    contaminated = noise[:, 0].copy()
    contaminated[:300] += 20.0  # 30% of the rows far off: a contaminated feature
    spiky = noise[:, 1].copy()
    spiky[:30] *= 100.0  # 3% far off: noise with a few wild misses
    light = noise[:, 2].copy()
    light[:50] += 20.0  # 5% far off: under a tenth with the Gaussian rows beyond 4 median errors (0.7%)
    stroke = noise[:, 3].copy()
    stroke[:150] += 20.0  # 15%: contaminated for a continuous feature, not for a rarely-moving one
    sq = np.square(np.column_stack([contaminated, spiky, light, stroke, noise[:, 4]]))
    rms, median = typical_squared_error(sq, "rms"), typical_squared_error(sq, "median")
    auto = typical_squared_error(sq, "auto")
    np.testing.assert_array_equal(auto, [median[0], rms[1], rms[2], median[3], rms[4]])
    rare = np.array([False, False, False, True, False])
    np.testing.assert_array_equal(typical_squared_error(sq, "auto", rare), [median[0], *rms[1:]])
    rare[0] = True  # a third far off is contaminated even for a rarely-moving feature
    assert typical_squared_error(sq, "auto", rare)[0] == median[0]


def test_typical_error_config() -> None:
    assert parse_config({}).model.typical_error == "trimmed"
    assert parse_config({"model": {"typical_error": "rms"}}).model.typical_error == "rms"
    assert parse_config({"model": {"typical_error": "median"}}).model.typical_error == "median"
    assert parse_config({"model": {"typical_error": "auto"}}).model.typical_error == "auto"
    with pytest.raises(ConfigError, match="typical_error"):
        parse_config({"model": {"typical_error": "mean"}})


@pytest.mark.parametrize("kind", ["autoencoder", "gan"])
def test_a_median_or_trimmed_scale_is_not_inflated_by_a_contaminated_third(kind: str) -> None:
    """A third of the rows off the line y = x: the median and the trimmed error scale of y stay nearer the
    normal rows' error, so those rows' scores stand further above the normal rows' than under the root mean
    square."""
    rng = np.random.default_rng(0)
    n = 600
    x = rng.normal(size=n)
    y = x + 0.05 * rng.normal(size=n)
    off = np.arange(n) % 3 == 0
    y[off] += rng.choice([-1.5, 1.5], size=int(off.sum()))
    table = pa.table({"x": x, "y": y, "z": rng.normal(size=n)})
    scales, gaps = {}, {}
    for statistic in ("rms", "median", "trimmed"):
        cfg = parse_config({"model": {"kind": kind, "typical_error": statistic, "loss": "mse"},  # one network
                            "train": {"epochs": 5, "seed": 0, "batch_size": 64}})
        det = make_detector(cfg, ["x", "y", "z"], []).fit(table)
        spec = det.manifest_()["model"]
        assert spec["typical_error"] == statistic
        scales[statistic] = np.asarray(spec["error_scale"][:3])
        scores = det.decision_function(table)
        gaps[statistic] = float(np.median(scores[off]) / np.median(scores[~off]))
    assert np.all(scales["median"] < scales["rms"])
    assert scales["trimmed"][1] < scales["rms"][1]
    assert gaps["median"] > gaps["rms"] and gaps["trimmed"] > gaps["rms"]


@pytest.mark.parametrize("kind", ["autoencoder", "gan"])
def test_auto_knows_the_rarely_moving_features(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """With `auto` the detectors pass the rule the features the knee softens (a mostly-zero count)."""
    module = importlib.import_module(f"adspark.models.{kind}")
    seen: list[tuple[str, np.ndarray | None]] = []

    def spy(sq: np.ndarray, statistic: str, rare: np.ndarray | None = None, weights: np.ndarray | None = None
            ) -> np.ndarray:
        seen.append((statistic, rare))
        return typical_squared_error(sq, statistic, rare, weights)  # type: ignore[arg-type]

    monkeypatch.setattr(module, "typical_squared_error", spy)
    modes: list[str] = []  # which rule each call of softened_inputs ran: each needs a mode over the sample

    def count(features: np.ndarray, frozen: np.ndarray, which: str, numeric: int) -> list[int]:
        modes.append(which)
        return softened_inputs(features, frozen, which, numeric)  # type: ignore[arg-type]

    monkeypatch.setattr(reconstruction, "softened_inputs", count)
    rng = np.random.default_rng(0)
    n = 400
    x = rng.normal(size=n)
    count = np.where(rng.random(n) < 0.8, 0.0, rng.integers(1, 5, size=n).astype(float))
    table = pa.table({"x": x, "y": x + 0.1 * rng.normal(size=n), "count": count})
    cfg = parse_config({"model": {"kind": kind, "typical_error": "auto", "loss": "mse"},  # one network
                        "train": {"epochs": 2, "seed": 0, "batch_size": 64}})
    spec = make_detector(cfg, ["x", "y", "count"], []).fit(table).manifest_()["model"]
    assert spec["typical_error"] == "auto"
    statistic, rare = seen[-1]
    assert statistic == "auto" and rare is not None
    assert np.flatnonzero(rare).tolist() == spec["softened_inputs"] == [2]
    assert modes == ["rare"]  # the knee's features and the unit's mask come from one pass


def test_knee_inputs_gives_the_unit_the_rarely_moving_features_whatever_the_knee_softens() -> None:
    rng = np.random.default_rng(1)
    count = np.where(rng.random(200) < 0.8, 0.0, 1.0)
    features = np.column_stack([rng.normal(size=200), count, np.ones(200), rng.integers(0, 2, 200)])
    frozen = np.array([False, False, True, False])  # the constant column; the last is a category bucket
    assert knee_inputs(features, frozen, "rare", "rms", 3) == ([1], None)
    softened, rare = knee_inputs(features, frozen, "all", "auto", 3)
    assert softened == [0, 1, 3]
    assert rare is not None and rare.tolist() == [False, True, False, False]
    softened, rare = knee_inputs(features, frozen, "rare", "auto", 3)
    assert softened == [1] and rare is not None and rare.tolist() == [False, True, False, False]
