"""top_features: each row's reasons from the scorers' own per-column errors."""

import copy
import itertools

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from adspark.runtime import build_scorer
from adspark.schema import OutputNames
from adspark.scoring import score_dataframe
from tests.conftest import make_table, write_parquet

FEATURES = ["amount", "a", "b", "count"]
COLUMNS = [*FEATURES, "merchant"]


def _arrays(df: pd.DataFrame) -> list[pa.Array]:
    return [*(pa.array(df[c].astype("float64")) for c in FEATURES), pa.array(df["merchant"])]


@pytest.mark.parametrize("knee", [None, 2.0])
def test_scores_stay_bit_identical_and_shares_sum_to_one(trained, dataset, knee) -> None:
    art = trained["artifact"]
    manifest = copy.deepcopy(art.manifest)
    networks = manifest["model"]["members"]  # the default autoencoder: one network per loss
    assert [n["model"]["loss"] for n in networks] == ["mse", "welsch"] and manifest["model"]["combine"] == "geometric"
    for network in networks:
        network["model"]["error_knee"] = knee  # None: squared throughout (the default)
    scorer = build_scorer(manifest, art.files)
    df = dataset[0]
    scores, parts, expected = scorer.explain_arrays(_arrays(df))
    np.testing.assert_array_equal(scores, scorer.score_arrays(_arrays(df)))
    # each network's score by hand: weighted scaled squared error (softened beyond the knee), summed per row,
    # with the features constant in training compared with their training value; the model's score is their
    # geometric mean
    features = scorer.preprocessor.transform(_arrays(df))
    errors = []
    for network, _ in scorer.members:
        x = network.network_input(features)
        before = np.zeros(len(df))
        for session, name in zip(network.sessions, network.input_names, strict=True):
            recon = session.run(None, {name: x})[0].astype(np.float64)
            recon[:, network.frozen] = network.frozen_values
            sq = np.square((features - recon) / network.error_scale)
            if knee is not None:
                k2, soft = knee**2, (sq > knee**2) & network.softened  # a frozen feature's move counts in full
                sq = np.where(soft, k2 * (1.0 + np.log(np.maximum(sq, k2) / k2)), sq)
            before += np.sum(sq * network.weights, axis=1)
        np.testing.assert_array_equal(network.score_features(features), before / len(network.sessions))
        errors.append(before / len(network.sessions))
    np.testing.assert_array_equal(scores, np.prod(errors, axis=0) ** 0.5)
    assert parts is not None and expected is not None and parts.shape == (len(df), len(COLUMNS))
    np.testing.assert_allclose(parts.sum(axis=1), scores, rtol=1e-9)  # the parts are the score, split by column
    assert np.all(np.isnan(expected[:, 4])) and np.all(np.isfinite(expected[:, :4]))


@pytest.fixture(scope="module")
def spiked(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, str]:
    """A clean table with `b` multiplied by 10 in 300 rows (rows where |b| > 0.5, so every spike is large)."""
    df = make_table(3000, seed=11, outliers=0)
    rows = np.flatnonzero(np.abs(df["b"].to_numpy()) > 0.5)[:300]
    before = df.loc[rows, "b"].to_numpy().copy()
    df.loc[rows, "b"] = before * 10.0
    return df, rows, before, write_parquet(df, tmp_path_factory.mktemp("spiked") / "t", files=3)


def _reasons(spark, art, data: str, batch: int, parts: int) -> pd.DataFrame:
    key = "spark.sql.execution.arrow.maxRecordsPerBatch"
    spark.conf.set(key, str(batch))
    try:
        df = spark.read.parquet(data).repartition(parts)
        names = OutputNames(percentile="anomaly_percentile", reasons="top_features", explain=3)
        out = score_dataframe(spark, df, art, names=names).select("txn_id", "anomaly_score", "top_features")
        return out.toPandas().sort_values("txn_id").reset_index(drop=True)
    finally:
        spark.conf.unset(key)


def test_a_spiked_column_is_the_top_reason_and_expected_is_its_usual_value(spark, trained, spiked) -> None:
    _, rows, before, data = spiked
    art = trained["artifact"]
    out = _reasons(spark, art, data, 10_000, 2)
    top = [r[0] for r in out.loc[rows, "top_features"]]
    hit = np.mean([t["feature"] == "b" for t in top])
    expected = np.array([t["expected"] for t in top])
    error = np.abs(expected - before) / np.abs(before * 9.0)  # distance to the true value, per unit of spike
    print(f"spiked rows with b first: {hit:.3f}; median |expected - unspiked| / spike: {np.median(error):.3f}")
    assert hit >= 0.95
    assert np.median(error) < 0.2
    first = out.loc[0, "top_features"]
    assert len(first) == 3 and 0.0 < sum(r["share"] for r in first) <= 1.0 + 1e-12  # top 3 of 5 shares
    assert all(r["share"] >= s["share"] for r, s in itertools.pairwise(first))
    merchant = [r for row in out["top_features"] for r in row if r["feature"] == "merchant"]
    assert merchant and all(r["expected"] is None for r in merchant)
    # the same reasons, bit for bit, whatever the batches and partitions
    other = _reasons(spark, art, data, 7, 5)
    np.testing.assert_array_equal(other["anomaly_score"], out["anomaly_score"])
    assert other["top_features"].astype(str).tolist() == out["top_features"].astype(str).tolist()
