import numpy as np
import pyarrow as pa
import pytest

from adspark.errors import NotFittedError, SchemaError
from adspark.features import Preprocessor, robust_scale


def _table(n: int = 2000, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "normal": rng.normal(10.0, 2.0, n),
            "heavy": rng.pareto(1.2, n) * 100,
            "cat": rng.choice(["a", "b", "c"], n, p=[0.6, 0.3, 0.1]).tolist(),
        }
    )


def test_robust_scale_fallbacks() -> None:
    assert robust_scale(np.array([1.0, 2.0, 3.0, 4.0, 5.0])) == pytest.approx(2.0 / 1.349)
    binary = np.r_[np.zeros(95), np.ones(5)]
    assert robust_scale(binary) == pytest.approx(np.std(binary))  # IQR and MAD are 0
    assert robust_scale(np.full(10, 7.0)) == 1.0
    assert robust_scale(np.array([])) == 1.0


def test_fit_is_robust_and_log_compresses_heavy_tails() -> None:
    pre = Preprocessor(["normal", "heavy"], ["cat"]).fit(_table())
    normal, heavy = pre.numeric_ or []
    assert normal.median == pytest.approx(10.0, abs=0.2)
    assert normal.scale == pytest.approx(2.0, rel=0.1)
    assert not normal.log and heavy.log
    z = pre.transform([pa.array([10.0, 1e9]), pa.array([1.0, 1e9]), pa.array(["a", "a"])])
    assert abs(z[0, 0]) < 0.2
    assert 5 < z[1, 1] < 1e3  # log-compressed by many orders of magnitude, but still far out


def test_missing_values_impute_with_indicator() -> None:
    t = pa.table({"x": [1.0, 2.0, None, 4.0, 5.0], "y": [1.0, 2.0, 3.0, 4.0, 5.0]})
    pre = Preprocessor(["x", "y"], []).fit(t)
    assert pre.feature_names_ == ["x", "y", "x__missing", "y__missing"]  # y never null in the sample: still flagged
    out = pre.transform([pa.array([None, np.nan, np.inf, 3.0]), pa.array([3.0, 3.0, -np.inf, 3.0])])
    assert np.all(np.isfinite(out))
    np.testing.assert_array_equal(out[:, 2], [1, 1, 1, 0])
    np.testing.assert_array_equal(out[:, 3], [0, 0, 1, 0])
    assert out[0, 0] == 0.0 and out[2, 1] == 0.0  # imputed with the median (0 after scaling)


def test_on_missing_fail_names_the_column() -> None:
    t = pa.table({"amount": [1.0, None, 3.0]})
    with pytest.raises(SchemaError, match="'amount'"):
        Preprocessor(["amount"], [], on_missing="fail").fit(t)
    pre = Preprocessor(["amount"], [], on_missing="fail").fit(pa.table({"amount": [1.0, 2.0, 3.0]}))
    with pytest.raises(SchemaError, match="'amount'.*on_missing: fail"):
        pre.transform([pa.array([1.0, float("nan")])])


def test_categorical_buckets_unseen_and_null() -> None:
    pre = Preprocessor([], ["cat"], onehot_max=2).fit(_table())
    names = pre.feature_names_
    assert names[:2] == ["cat=a", "cat=b"]
    out = pre.transform([pa.array(["a", "c", "never-seen", None])])
    col = {n: i for i, n in enumerate(names)}
    assert out[0, col["cat=a"]] == 1 and out[0].sum() < 1.5
    assert out[1, col["cat=<other>"]] == 1
    assert out[2, col["cat=<unseen>"]] == 1
    assert out[3, col["cat=<null>"]] == 1
    rarity = out[:, col["cat__rarity"]]
    assert rarity[2] > rarity[1] > rarity[0]  # never seen is rarer than rare, rarer than common


def test_state_round_trip_and_chunking_give_identical_features() -> None:
    t = _table()
    pre = Preprocessor(["normal", "heavy"], ["cat"]).fit(t)
    clone = Preprocessor.from_state(pre.to_state())
    cols = [t.column(c) for c in pre.columns]
    full = pre.transform(cols)
    np.testing.assert_array_equal(full, clone.transform(cols))
    parts = [clone.transform([c.slice(i, 7) for c in cols]) for i in range(0, t.num_rows, 7)]
    np.testing.assert_array_equal(full, np.vstack(parts))


def test_not_fitted() -> None:
    with pytest.raises(NotFittedError):
        Preprocessor(["x"], []).transform([pa.array([1.0])])


def test_feature_weights_give_each_column_an_equal_share() -> None:
    t = pa.table({"x": [1.0, None, 3.0, 4.0], "y": [1.0, 2.0, 3.0, 4.0], "cat": ["a", "b", "a", None]})
    pre = Preprocessor(["x", "y"], ["cat"]).fit(t)
    w = dict(zip(pre.feature_names_, pre.feature_weights_, strict=True))
    assert w["x"] + w["x__missing"] == pytest.approx(1 / 3)
    assert w["y"] + w["y__missing"] == pytest.approx(1 / 3)
    assert w["cat=a"] == w["cat=b"] == 0.0  # one-hot: network context, not scored
    assert sum(v for k, v in w.items() if k.startswith("cat")) == pytest.approx(1 / 3)
    assert sum(w.values()) == pytest.approx(1.0)
