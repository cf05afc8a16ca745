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


# --- on Spark, with the session's trained model ----------------------------------------------------------

FEATURES = ["amount", "a", "b", "count"]


def test_thresholds_are_calibrated_on_rows_the_network_never_saw(trained) -> None:
    from adspark.runtime import build_scorer
    from tests.conftest import make_table

    art = trained["artifact"]
    fresh = make_table(20_000, seed=9, outliers=100)  # the training distribution: 0.5% outliers
    scorer = build_scorer(art.manifest, art.files)
    scores = scorer.score_arrays([*(pa_col(fresh[c].astype("float64")) for c in FEATURES), pa_col(fresh["merchant"])])
    summary = ScoreSummary.from_state(art.manifest["score_summary"])
    contamination = float(np.mean(scores > art.threshold))
    pot = float(np.mean(scores > decide("pot", 1e-3, summary).threshold))
    print(f"fresh rows flagged: contamination 0.01 -> {contamination:.4f}, pot 1e-3 -> {pot:.5f}")
    assert 0.005 <= contamination <= 0.02
    assert 1e-3 / 3 <= pot <= 3e-3


def pa_col(values):
    import pyarrow as pa

    return pa.array(values)


def _score(spark, tmp_path, trained, data: str, **extra):
    from adspark import pipeline
    from adspark.config import parse_config
    from tests.conftest import job_dict

    cfg = parse_config(job_dict(tmp_path, data, model_dir=trained["cfg"].model_dir, **extra))
    report = pipeline.score(spark, cfg)
    out = spark.read.parquet(cfg.output.path).toPandas().sort_values("txn_id").reset_index(drop=True)
    manifest = json.loads((tmp_path / "out" / "_adspark_run.json").read_text())
    return report, out, manifest


def test_score_applies_the_config_threshold_block_and_records_it(spark, trained, dataset, tmp_path) -> None:
    _, out, m = _score(spark, tmp_path, trained, dataset[1], threshold={"method": "pot", "value": 0.002},
                       output={"path": str(tmp_path / "out"), "columns": ["txn_id"], "explain": 0})
    art = trained["artifact"]
    expected = decide("pot", 0.002, ScoreSummary.from_state(art.manifest["score_summary"])).threshold
    assert m["decision"]["method"] == "pot" and m["decision"]["level"] == 0.98 and m["decision"]["source"] == "config"
    assert m["threshold"] == m["decision"]["threshold"] == expected != art.threshold
    assert m["decision"]["tail"]["excesses"] >= 10
    np.testing.assert_array_equal(out["is_anomaly"], out["anomaly_score"] > expected)
    pct = out["anomaly_percentile"].to_numpy()
    assert np.all((pct >= 0) & (pct < 1))
    order = np.argsort(out["anomaly_score"].to_numpy(), kind="stable")
    assert np.all(np.diff(pct[order]) >= 0)  # percentiles keep the scores' order


def test_top_k_flags_exactly_k_per_segment_ties_by_id(spark, trained, tmp_path) -> None:
    from tests.conftest import make_table, write_parquet

    df = make_table(1200, seed=12, outliers=0)
    df.loc[:9, ["amount", "a", "b", "count"]] = [9000.0, 3.0, -3.0, 14]  # ten identical extreme rows
    df.loc[:9, "merchant"] = "fuel"
    data = write_parquet(df.sample(frac=1.0, random_state=0), tmp_path / "data", files=3)
    cached_before = set(spark.sparkContext._jsc.getPersistentRDDs().keySet())
    _, out, m = _score(spark, tmp_path, trained, data, threshold={"method": "top_k", "value": 6, "by": ["merchant"]},
                       output={"path": str(tmp_path / "out"), "percentile": False, "explain": 0})
    for merchant, seg in out.groupby("merchant"):
        assert int(seg["is_anomaly"].sum()) == 6, merchant
        top = seg.sort_values(["anomaly_score", "txn_id"], ascending=[False, True]).head(6)
        assert set(top["txn_id"]) == set(seg.loc[seg["is_anomaly"], "txn_id"])
    fuel = out[out["merchant"] == "fuel"]
    assert sorted(fuel.loc[fuel["is_anomaly"], "txn_id"]) == [0, 1, 2, 3, 4, 5]  # ties: lowest ids first
    assert m["decision"]["method"] == "top_k" and m["decision"]["by"] == ["merchant"] and m["threshold"] is None
    assert m["flagged"] == 6 * out["merchant"].nunique()
    # the scores persisted for the cuts are released after the write
    assert set(spark.sparkContext._jsc.getPersistentRDDs().keySet()) == cached_before
    cuts = {c["segment"]["merchant"]: c["threshold"] for c in m["decision"]["thresholds"]}
    assert cuts["fuel"] == out.loc[0, "anomaly_score"]
    # one budget for the whole table
    from adspark.decisions import Decision
    from adspark.scoring import score_dataframe

    whole = Decision("top_k", 4)
    flagged = score_dataframe(spark, spark.read.parquet(data), trained["artifact"], decision=whole, ids=["txn_id"])
    assert sorted(r["txn_id"] for r in flagged.where("is_anomaly").select("txn_id").collect()) == [0, 1, 2, 3]
    assert whole.details["thresholds"] == [{"segment": {}, "threshold": out.loc[0, "anomaly_score"]}]
    assert len(whole.cached) == 1
    whole.release()
    assert not whole.cached and set(spark.sparkContext._jsc.getPersistentRDDs().keySet()) == cached_before


def test_a_model_trained_with_top_k_runs_end_to_end(spark, tmp_path) -> None:
    """threshold.method top_k in the job's own config: trained, scored, reported; no threshold anywhere."""
    from adspark import cli, pipeline
    from adspark.artifact import load_artifact
    from adspark.config import parse_config
    from tests.conftest import job_dict, make_table, write_parquet

    data = write_parquet(make_table(1200, seed=13), tmp_path / "data")
    cfg = parse_config(job_dict(tmp_path, data, threshold={"method": "top_k", "value": 6, "by": ["merchant"]}))
    report = pipeline.run(spark, cfg)
    out = spark.read.parquet(cfg.output.path).toPandas()
    assert report.output_rows == 1200 and report.flagged == 6 * out["merchant"].nunique()
    assert (out.groupby("merchant")["is_anomaly"].sum() == 6).all()
    artifact = load_artifact(str(cfg.model_dir))
    assert artifact.manifest["threshold"]["threshold"] is None and np.isnan(artifact.threshold)
    assert artifact.manifest["reference"]["score"]["expected_flag_rate"] is None
    assert "flag_reasons" not in artifact.manifest["reference"]
    run = json.loads((tmp_path / "out" / "_adspark_run.json").read_text())
    assert run["threshold"] is None and "flag_reasons" not in run  # no threshold to count flags by in the pass
    assert "expected – from training" in (tmp_path / "out" / "_adspark_report.html").read_text()
    assert cli.main(["inspect", str(cfg.model_dir)]) == 0


def test_output_names_are_the_users(spark, trained, tmp_path) -> None:
    from adspark import pipeline
    from adspark.config import parse_config
    from adspark.errors import SchemaError
    from adspark.schema import resolve_roles
    from tests.conftest import job_dict, make_table, write_parquet

    df = make_table(300, seed=13).rename(columns={"label": "is_anomaly"})
    data = write_parquet(df, tmp_path / "labelled", files=1)
    cols = {"id": ["txn_id"], "categorical": ["merchant"], "exclude": ["is_anomaly"]}
    cfg = parse_config(job_dict(tmp_path, data, columns=cols, model_dir=trained["cfg"].model_dir))
    resolve_roles(cfg, spark.read.parquet(data).schema)  # what train checks: an input name is never refused
    with pytest.raises(SchemaError, match=r"'is_anomaly' \(output.flag_column\) would overwrite the input column"):
        pipeline.score(spark, cfg)
    renamed = {"path": str(tmp_path / "out"), "flag_column": "flagged", "score_column": "score",
               "percentile_column": "pct", "reasons_column": "why", "explain": 2}
    cfg = parse_config(job_dict(tmp_path, data, columns=cols, model_dir=trained["cfg"].model_dir, output=renamed))
    pipeline.score(spark, cfg)
    out = spark.read.parquet(str(tmp_path / "out"))
    assert out.columns == [*df.columns, "score", "flagged", "pct", "why"]
    row = out.where("txn_id = 0").first()
    assert len(row["why"]) == 2 and row["is_anomaly"] == 1


def test_percentiles_from_two_training_samples_agree_on_held_out_rows(trained) -> None:
    """The frozen distribution behind the percentiles: two fresh samples of the same distribution, one network."""
    from adspark.runtime import build_scorer
    from tests.conftest import make_table

    art = trained["artifact"]
    scorer = build_scorer(art.manifest, art.files)

    def scores(seed: int, n: int) -> np.ndarray:
        df = make_table(n, seed=seed, outliers=n // 200)
        return scorer.score_arrays([*(pa_col(df[c].astype("float64")) for c in FEATURES), pa_col(df["merchant"])])

    first, second = ScoreSummary.from_scores(scores(31, 3000)), ScoreSummary.from_scores(scores(32, 3000))
    held_out = scores(33, 10_000)
    move = float(np.mean(np.abs(first.percentile(held_out) - second.percentile(held_out))))
    print(f"held-out percentiles move by {move:.4f} on average between two training samples")
    assert move <= 0.02
