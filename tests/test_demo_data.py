"""Synthetic demo transactions: schema, determinism, invariants, Parquet output, detectability."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from adspark.demo_data import COLUMNS, RARE_COUNTRIES, generate_transactions, write_transactions

N = 20_000
EXPECTED_COLUMNS = [
    "txn_id",
    "card_id",
    "account_id",
    "ts",
    "amount",
    "merchant_category",
    "hour",
    "country",
    "distance_from_home_km",
    "txns_last_24h",
    "is_online",
    "is_fraud",
]
STRING_COLUMNS = ["card_id", "account_id", "merchant_category", "country"]
NUMERIC_FEATURES = ["amount", "hour", "distance_from_home_km", "txns_last_24h", "is_online"]


@pytest.fixture(scope="module")
def df() -> pd.DataFrame:
    return generate_transactions(N, seed=7)


def test_deterministic_for_a_seed(df: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(df, generate_transactions(N, seed=7))
    other = generate_transactions(N, seed=8)
    assert not other["amount"].equals(df["amount"])


def test_columns_and_dtypes(df: pd.DataFrame) -> None:
    assert list(df.columns) == EXPECTED_COLUMNS == COLUMNS
    assert len(df) == N
    assert df["txn_id"].dtype == np.int64
    assert df["amount"].dtype == np.float64
    assert df["distance_from_home_km"].dtype == np.float64
    assert df["hour"].dtype == np.int32
    assert df["txns_last_24h"].dtype == np.int32
    assert df["is_online"].dtype == np.bool_
    assert df["is_fraud"].dtype == np.int8
    assert pd.api.types.is_datetime64_dtype(df["ts"])
    for col in STRING_COLUMNS:
        assert pd.api.types.is_string_dtype(df[col]), col
        assert df[col].map(type).eq(str).all(), col
        assert df[col].notna().all(), col
    assert df["card_id"].str.fullmatch(r"C\d{7}").all()
    assert not df.isna().any().any()


def test_txn_id_unique_range(df: pd.DataFrame) -> None:
    assert df["txn_id"].is_unique
    assert df["txn_id"].tolist() == list(range(N))
    assert df["ts"].is_monotonic_increasing


def test_fraud_rate(df: pd.DataFrame) -> None:
    assert set(df["is_fraud"].unique()) <= {0, 1}
    assert df["is_fraud"].mean() == pytest.approx(0.01, abs=0.002)
    assert generate_transactions(5_000, seed=1, fraud_rate=0.05)["is_fraud"].mean() == pytest.approx(0.05, abs=0.005)
    assert generate_transactions(2_000, seed=1, fraud_rate=0.0)["is_fraud"].sum() == 0


def test_hour_range_and_consistent_with_ts(df: pd.DataFrame) -> None:
    assert df["hour"].between(0, 23).all()
    assert (df["ts"].dt.hour == df["hour"]).all()
    span = df["ts"].max() - df["ts"].min()
    assert pd.Timedelta(days=28) < span <= pd.Timedelta(days=30)


def test_value_ranges(df: pd.DataFrame) -> None:
    amount = df["amount"].to_numpy()
    assert (amount > 0).all()
    assert np.allclose(amount, np.round(amount, 2))
    assert (df["distance_from_home_km"] >= 0).all()
    assert (df["txns_last_24h"] >= 0).all()
    assert df["merchant_category"].nunique() >= 10
    assert df["card_id"].nunique() == pytest.approx(N / 40, rel=0.1)
    assert 0.05 < df["is_online"].mean() < 0.6


def test_normal_traffic_is_mostly_at_home(df: pd.DataFrame) -> None:
    normal = df[df["is_fraud"] == 0]
    home = normal.groupby("card_id")["country"].agg(lambda s: s.mode().iloc[0])
    abroad = (normal["country"] != normal["card_id"].map(home)).mean()
    assert 0.01 < abroad < 0.06
    assert not normal["country"].isin(RARE_COUNTRIES).any()
    # per-card spending levels differ
    medians = normal[normal["merchant_category"] == "grocery"].groupby("card_id")["amount"].median()
    assert medians.quantile(0.9) / medians.quantile(0.1) > 1.5


def test_fraud_patterns_present(df: pd.DataFrame) -> None:
    fraud = df[df["is_fraud"] == 1]
    normal = df[df["is_fraud"] == 0]
    testing = fraud[(fraud["merchant_category"] == "digital_goods") & (fraud["amount"] <= 2.0)]
    assert len(testing) > 0.2 * len(fraud)
    assert testing["is_online"].all()
    assert testing["txns_last_24h"].median() > normal["txns_last_24h"].quantile(0.99)
    night = fraud["hour"] <= 5
    assert night.mean() > 0.4
    assert fraud["amount"].median() > normal["amount"].median()


def test_small_and_empty() -> None:
    empty = generate_transactions(0)
    assert list(empty.columns) == EXPECTED_COLUMNS
    assert len(empty) == 0
    assert len(generate_transactions(1)) == 1
    with pytest.raises(ValueError):
        generate_transactions(-1)
    with pytest.raises(ValueError):
        generate_transactions(10, fraud_rate=1.5)


def test_write_transactions(tmp_path: Path) -> None:
    out = tmp_path / "txns"
    n = write_transactions(out, n_rows=5_000, seed=3, n_files=4)
    assert n == 5_000
    assert out.is_dir()
    assert len(list(out.glob("part-*.parquet"))) == 4
    table = pq.read_table(out)
    assert table.num_rows == n
    assert table.schema.field("ts").type == pa.timestamp("us")
    assert table.schema.field("card_id").type == pa.string()
    back = table.to_pandas().sort_values("txn_id", ignore_index=True)
    assert back["txn_id"].tolist() == list(range(n))
    pd.testing.assert_series_equal(back["amount"], generate_transactions(5_000, seed=3)["amount"])
    # rewriting with fewer files replaces the old part files
    assert write_transactions(out, n_rows=1_000, seed=3, n_files=2) == 1_000
    assert len(list(out.glob("part-*.parquet"))) == 2
    assert pq.read_table(out).num_rows == 1_000


def test_isolation_forest_detects_fraud(df: pd.DataFrame) -> None:
    ensemble = pytest.importorskip("sklearn.ensemble")
    metrics = pytest.importorskip("sklearn.metrics")
    x = df[NUMERIC_FEATURES].astype(np.float64).to_numpy()
    forest = ensemble.IsolationForest(n_estimators=100, random_state=0).fit(x)
    auc = metrics.roc_auc_score(df["is_fraud"], -forest.score_samples(x))
    assert auc > 0.7
    assert auc < 0.999  # realistic: not perfectly separable
