"""`adspark evaluate`: metrics computed in Spark agree with scikit-learn; labels are checked first."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import average_precision_score, roc_auc_score

from adspark import cli
from adspark.evaluate import metrics_from
from tests.conftest import job_dict, snapshot


def _ties(n: int = 3000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.08).astype(np.int64)
    score = np.round(rng.normal(size=n) + 1.5 * y, 1)  # rounded: many tied scores, across both labels
    seg = rng.choice(["web", "pos", "atm"], n)
    return pd.DataFrame({"id": np.arange(n), "anomaly_score": score, "is_anomaly": score > 1.0, "y": y, "seg": seg})


def _precision_at(y: np.ndarray, s: np.ndarray, k: int) -> float:
    """Expected precision of the top k under a random order of tied scores."""
    cut = np.sort(s)[::-1][k - 1]
    above = s > cut
    tied = s == cut
    return float((y[above].sum() + y[tied].sum() * (k - above.sum()) / tied.sum()) / k)


def test_metrics_agree_with_sklearn_with_ties(spark) -> None:
    df = _ties()
    y, s = df["y"].to_numpy(), df["anomaly_score"].to_numpy()
    assert len(np.unique(s)) < len(s) / 10
    m = metrics_from(spark.createDataFrame(df), "y", 1.0, "seg")  # type: ignore[attr-defined]
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, s), abs=1e-6)
    assert m["pr_auc"] == pytest.approx(average_precision_score(y, s), abs=1e-6)
    flagged = int((s > 1.0).sum())
    assert m["flagged"] == flagged and m["rows"] == len(df) and m["positives"] == int(y.sum())
    for k in (100, 1000, flagged):
        assert m["precision_at_k"][str(k)] == pytest.approx(_precision_at(y, s, k), abs=1e-9)
    at = m["at_threshold"]
    assert at["precision"] == pytest.approx(y[s > 1.0].mean()) and at["recall"] == pytest.approx(
        y[s > 1.0].sum() / y.sum())
    for name, part in df.groupby("seg"):
        seg = m["segments"]["seg"][name]
        assert seg["roc_auc"] == pytest.approx(roc_auc_score(part["y"], part["anomaly_score"]), abs=1e-6)
        assert seg["pr_auc"] == pytest.approx(average_precision_score(part["y"], part["anomaly_score"]), abs=1e-6)
    roc = m["curves"]["roc"]
    assert roc["fpr"][0] == 0.0 and roc["tpr"][-1] == 1.0 and np.all(np.diff(roc["fpr"]) >= 0)


def _config(tmp: Path, model_dir: str | None = None) -> str:
    cfg = {"columns": {"id": ["id"]}, "spark": {"spark.ui.enabled": "false"}}
    if model_dir:
        cfg["model_dir"] = model_dir
    (tmp / "job.yaml").write_text(yaml.safe_dump(cfg))
    return str(tmp / "job.yaml")


def test_scores_mode_writes_metrics_and_page(spark, tmp_path: Path) -> None:
    path = str(tmp_path / "scored")
    spark.createDataFrame(_ties(800, seed=2)).write.parquet(path)  # type: ignore[attr-defined]
    (tmp_path / "scored" / "_adspark_run.json").write_text(json.dumps({"threshold": 1.0}))
    args = ["evaluate", "--config", _config(tmp_path), "--label", "y", "--scores", path, "--report",
            str(tmp_path / "rep")]
    assert cli.main(args) == 0
    m = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert {"roc_auc", "pr_auc", "precision_at_k", "threshold", "flagged"} <= set(m)
    assert m["threshold"] == 1.0 and len(m["top_rows"]["rows"]) == 20
    page = (tmp_path / "rep" / "index.html").read_text()
    assert page.count('<img src="data:image/png;base64,') >= 3


def test_scores_through_a_pattern_take_the_threshold_all_their_runs_agree_on(spark, tmp_path: Path, capsys) -> None:
    frames = {"dt=1": _ties(400, seed=3), "dt=2": _ties(500, seed=4)}
    for name, frame in frames.items():
        spark.createDataFrame(frame).write.parquet(str(tmp_path / "out" / name))  # type: ignore[attr-defined]
        (tmp_path / "out" / name / "_adspark_run.json").write_text(json.dumps({"threshold": 1.0}))
    args = ["evaluate", "--config", _config(tmp_path), "--label", "y", "--scores", str(tmp_path / "out" / "dt=*"),
            "--report", str(tmp_path / "rep")]
    assert cli.main(args) == 0
    m = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    both = pd.concat(frames.values())
    assert m["threshold"] == 1.0 and m["rows"] == 900 and m["flagged"] == int((both["anomaly_score"] > 1.0).sum())
    capsys.readouterr()
    for threshold, says in ((1.5, "flagged at different thresholds"), (None, "top_k, with no single score")):
        (tmp_path / "out" / "dt=2" / "_adspark_run.json").write_text(json.dumps({"threshold": threshold}))
        assert cli.main(args) == 2
        err = capsys.readouterr().err
        assert says in err and "dt=2" in err and "--model-dir" in err


def test_the_page_never_lands_in_what_evaluate_reads_nor_over_another_tools_files(spark, tmp_path: Path,
                                                                                   capsys) -> None:
    path = str(tmp_path / "scored")
    spark.createDataFrame(_ties(300, seed=3)).write.parquet(path)  # type: ignore[attr-defined]
    (tmp_path / "scored" / "_adspark_run.json").write_text(json.dumps({"threshold": 1.0}))
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<h1>our team page</h1>")
    (tmp_path / "afile").write_text("x")
    config = _config(tmp_path, str(tmp_path / "model"))
    before = snapshot(tmp_path)
    refused = {
        path: "--report ('" + path + "') is inside --scores",  # index.html in a Parquet directory breaks reading it
        f"{path}/eval": "is inside --scores",
        str(tmp_path / "model" / "eval"): "is inside model_dir",  # a file the manifest does not list
        str(site): "holds index.html that adspark evaluate did not write",
        str(tmp_path / "afile"): "is a file",
    }
    for report, message in refused.items():
        args = ["evaluate", "--config", config, "--label", "y", "--scores", path, "--report", report]
        assert cli.main(args) == 2, report
        assert message in capsys.readouterr().err
    assert snapshot(tmp_path) == before  # nothing written, the table and the page untouched
    args = ["evaluate", "--config", _config(tmp_path), "--label", "y", "--scores", path, "--report",
            str(tmp_path / "rep")]
    assert cli.main(args) == 0 and cli.main(args) == 0  # its own page is replaced
    assert spark.read.parquet(path).count() == 300  # type: ignore[attr-defined]


@pytest.mark.parametrize("label, message", [("nope", "not in the table"), ("seg", "must be boolean or numeric"),
                                            ("three", "not binary"), ("zeros", "no positive")])
def test_a_missing_or_non_binary_label_is_a_clear_error(spark, tmp_path: Path, capsys, label: str,
                                                        message: str) -> None:
    df = _ties(200).assign(three=lambda d: d["id"] % 3, zeros=0)
    path = str(tmp_path / "scored")
    spark.createDataFrame(df).write.parquet(path)  # type: ignore[attr-defined]
    (tmp_path / "scored" / "_adspark_run.json").write_text(json.dumps({"threshold": 1.0}))
    args = ["evaluate", "--config", _config(tmp_path), "--label", label, "--scores", path, "--report",
            str(tmp_path / "rep")]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert message in err and repr(label) in err
    assert not (tmp_path / "rep").exists()


def test_evaluate_scores_a_labelled_table_with_the_saved_model(trained: dict, dataset: tuple, tmp_path: Path) -> None:
    df, data = dataset
    cfg = job_dict(tmp_path, data, model_dir=str(trained["cfg"].model_dir))
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(cfg))
    args = ["evaluate", "--config", str(tmp_path / "job.yaml"), "--label", "label", "--report", str(tmp_path / "r")]
    assert cli.main(args) == 0
    m = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert m["rows"] == len(df) and m["positives"] == int(df["label"].sum())
    assert m["roc_auc"] > 0.9  # the injected outliers rank near the top
    assert m["threshold"] == trained["artifact"].threshold
    page = (tmp_path / "r" / "index.html").read_text()
    assert "Training loss" in page and "records no per-epoch losses" not in page
