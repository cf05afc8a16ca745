"""Drift: the reference frozen at training, PSI/KS at scoring, the warning and `on_drift: fail`."""

from __future__ import annotations

import json
import logging
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import yaml

from adspark import drift
from tests.conftest import make_table, snapshot, write_parquet
from tests.test_cli import _adspark, _call

FEATURES = ["amount", "a", "b", "count"]


def _arrow(df: pd.DataFrame) -> pa.Table:
    return pa.table({c: df[c].astype("float64") for c in FEATURES} | {"merchant": df["merchant"]})


def _shift(df: pd.DataFrame, col: str, iqrs: float) -> pd.DataFrame:
    q1, q3 = np.quantile(df[col], [0.25, 0.75])
    out = df.copy()
    out[col] = out[col] + iqrs * (q3 - q1)
    return out


@pytest.fixture(scope="module")
def reference() -> dict:
    table = _arrow(make_table(4000, seed=0))
    scores = np.random.default_rng(0).gamma(2.0, 1.0, 4000)
    return drift.build_reference(table, FEATURES, ["merchant"], scores, float(np.quantile(scores, 0.99)))


def test_psi_matches_the_formula() -> None:
    e, a = np.array([0.5, 0.3, 0.2]), np.array([0.4, 0.4, 0.2])
    assert drift.psi(e, a) == pytest.approx(float(np.sum((a - e) * np.log(a / e))))
    assert drift.psi(e, e) == 0.0


def test_same_distribution_stays_under_0_1_on_every_feature(reference: dict) -> None:
    features = drift.compare_features(reference, _arrow(make_table(4000, seed=7)))
    assert set(features) == {*FEATURES, "merchant"}
    for name, f in features.items():
        assert f["psi"] < 0.1, (name, f)
        assert f["ks"] is None or f["ks"] < 0.1, (name, f)
        assert f["null_rate"] == 0.0 and f["null_rate_change"] == 0.0
    assert drift.drifted(features, 0.25) == []


def test_a_column_shifted_by_a_few_iqrs_is_the_only_one_named(reference: dict) -> None:
    features = drift.compare_features(reference, _arrow(_shift(make_table(4000, seed=7), "a", 3.0)))
    assert drift.drifted(features, 0.25) == ["a"]
    assert features["a"]["psi"] > 1.0 and features["a"]["ks"] > 0.5


def test_nulls_and_new_categories_show_in_psi_and_null_rate(reference: dict) -> None:
    df = make_table(4000, seed=7)
    df.loc[:1999, "amount"] = np.nan
    df.loc[:999, "merchant"] = "casino"
    features = drift.compare_features(reference, _arrow(df))
    assert features["amount"]["null_rate"] == pytest.approx(0.5)
    assert features["amount"]["null_rate_change"] == pytest.approx(0.5)
    assert drift.drifted(features, 0.25) == ["amount", "merchant"] or set(drift.drifted(features, 0.25)) == {
        "amount", "merchant"}


def test_the_tally_counts_rows_above_the_threshold_by_first_reason(reference: dict) -> None:
    from adspark.runtime.base import reasons_array

    names = [*FEATURES, "merchant"]
    table = _arrow(make_table(500, seed=3))
    arrays = [table.column(c).combine_chunks() for c in names]
    rng = np.random.default_rng(1)
    scores, parts = rng.gamma(2.0, 1.0, 500), rng.random((500, len(names)))
    reasons = reasons_array(names, parts, None, 3, 500)
    tally = drift.Tally(reference, names, threshold=4.0)
    counts = tally.count([a[:250] for a in arrays], scores[:250], reasons[:250]) + tally.count(
        [a[250:] for a in arrays], scores[250:], reasons[250:])
    first = np.asarray(names)[parts.argmax(axis=1)][scores > 4.0]
    expected = pd.Series(first).value_counts()
    got = tally.flag_reasons(counts)
    assert got == expected.to_dict() and list(got.values()) == sorted(got.values(), reverse=True)
    assert tally.compare(counts) == drift.Tally(reference, names).compare(counts[: tally.flags_at])
    unattributed = tally.count(arrays, scores, reasons_array(names, None, None, 3, 500))
    assert tally.flag_reasons(unattributed) is None  # a kind without reasons: nothing to report
    assert drift.Tally(reference, names).flag_reasons(counts[: tally.flags_at]) is None  # no threshold (top_k)


def test_score_drift_from_cumulative_counts(reference: dict) -> None:
    scores = np.random.default_rng(1).gamma(2.0, 1.0, 5000)
    edges = drift.score_edges(reference)
    cumulative = [int(np.sum(scores <= e)) for e in edges]
    out = drift.score_drift(reference, cumulative, scores.size, int(np.sum(scores > 7.0)))
    assert out["score_psi"] < 0.05
    hist = out["score_histogram"]
    assert len(hist["current"]) == len(hist["edges"]) + 1 == len(hist["reference"])
    assert sum(hist["current"]) == pytest.approx(1.0)
    assert out["flag_rate"]["expected"] == pytest.approx(0.01, abs=1e-3)


# --------------------------------------------------------------------------- through the pipeline


def test_artifact_freezes_the_reference(trained: dict) -> None:
    ref = trained["artifact"].manifest["reference"]
    assert set(ref["numeric"]) == set(FEATURES) and set(ref["categorical"]) == {"merchant"}
    assert ref["sample_rows"] == 3000
    assert 0.005 <= ref["score"]["expected_flag_rate"] <= 0.02
    # the sample's flagged rows by the first column of their reasons: every one counted, under a feature
    mix = ref["flag_reasons"]
    assert sum(mix.values()) == round(ref["score"]["expected_flag_rate"] * 3000) and set(mix) <= {*FEATURES, "merchant"}


def _score(spark: object, trained: dict, data: str, out: Path, **monitor: object):  # type: ignore[no-untyped-def]
    from adspark import pipeline

    cfg = trained["cfg"].model_copy(deep=True)
    cfg.input.path, cfg.output.path = data, str(out)
    for k, v in monitor.items():
        setattr(cfg.monitor, k, v)
    return pipeline.score(spark, cfg)  # type: ignore[arg-type]


def test_score_records_drift_and_warns_once_naming_the_shifted_column(
    spark: object, trained: dict, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    shifted = write_parquet(_shift(make_table(3000, seed=11), "a", 3.0), tmp_path / "shifted")
    with caplog.at_level(logging.WARNING, logger="adspark"):
        _score(spark, trained, shifted, tmp_path / "out")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "drift" in r.getMessage()]
    assert len(warnings) == 1 and "'a'" in warnings[0]
    assert not any(f"'{c}'" in warnings[0] for c in ["amount", "b", "count", "merchant"])
    run = json.loads((tmp_path / "out" / "_adspark_run.json").read_text())
    d = run["drift"]
    assert d["drifted"] == ["a"] and d["features"]["a"]["psi"] > 1.0
    assert d["counted_in_scoring"] and d["sample_rows"] == 3000  # every input row, counted once
    assert all(d["features"][c]["psi"] < 0.1 for c in ["amount", "b", "count", "merchant"])
    assert {"psi", "ks", "null_rate"} <= set(d["features"]["b"])
    assert d["score_psi"] > 0.0 and d["flag_rate"]["current"] == run["flagged_rate"]
    assert (tmp_path / "out" / "_adspark_report.html").is_file()


def test_on_drift_fail_exits_3_and_keeps_the_previous_output(
    spark: object, trained: dict, dataset: tuple, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    _score(spark, trained, dataset[1], out)
    before = snapshot(out)
    shifted = write_parquet(_shift(make_table(3000, seed=11), "a", 3.0), tmp_path / "shifted")
    cfg = trained["cfg"].model_dump(mode="json")
    cfg.update(input={"path": shifted}, output={"path": str(out)}, monitor={"on_drift": "fail"},
               spark={"spark.master": "local[1]", "spark.ui.enabled": "false"})
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(cfg))
    proc: subprocess.CompletedProcess[str] = _call([*_adspark(), "score", "--config", str(tmp_path / "job.yaml")],
                                                   tmp_path)
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert "drift" in proc.stderr and "'a'" in proc.stderr
    assert snapshot(out) == before
    assert not list(tmp_path.glob(".out.adspark-staging-*"))
