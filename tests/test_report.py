"""HTML reports: the run page beside the output, the model page in the artifact, `adspark report`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from adspark import cli
from adspark.report import MAX_BYTES, evaluation_page, model_page, run_page
from tests.conftest import make_table, write_parquet


def _self_contained(page: str) -> None:
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert len(page.encode()) <= MAX_BYTES
    sources = re.findall(r'<img src="([^"]*)"', page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert not re.search(r'(?:src|href)="(?:https?:)?//', page)  # nothing fetched from the network
    assert "<script" not in page


@pytest.fixture(scope="module")
def scored(spark: object, trained: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from adspark import pipeline

    tmp = tmp_path_factory.mktemp("report")
    df = make_table(3000, seed=21)
    cfg = trained["cfg"].model_copy(deep=True)
    cfg.input.path = write_parquet(df, tmp / "tonight")
    cfg.output.path = str(tmp / "out")
    pipeline.score(spark, cfg)  # type: ignore[arg-type]
    return tmp / "out"


def test_score_writes_a_self_contained_run_report(scored: Path) -> None:
    page = (scored / "_adspark_report.html").read_text()
    _self_contained(page)
    run = json.loads((scored / "_adspark_run.json").read_text())
    assert run["run_id"] in page and "Drift" in page and "Top flagged rows" in page
    top = run["top_rows"]
    assert top["columns"][:3] == ["txn_id", "anomaly_score", "is_anomaly"] and len(top["rows"]) == 20
    scores = [r[1] for r in top["rows"]]
    assert scores == sorted(scores, reverse=True) and scores[-1] >= run["score_quantiles"]["q0.99"]
    assert str(top["rows"][0][0]) in page


def test_report_command_re_renders_from_the_run_manifest(scored: Path, tmp_path: Path) -> None:
    target = tmp_path / "again.html"
    assert cli.main(["report", str(scored), "--to", str(target)]) == 0
    _self_contained(target.read_text())
    assert cli.main(["report", str(tmp_path)]) == 2  # no run manifest there: one clear error


def test_model_report_is_in_the_artifact_and_inspect_points_to_it(trained: dict, capsys) -> None:
    artifact = trained["artifact"]
    assert "report.html" in artifact.manifest["files"]  # checksummed like the ONNX files
    page = artifact.files["report.html"].decode()
    _self_contained(page)
    assert "Loss per epoch" not in page or "loss" in page
    assert "Training scores" in page and "Error scale per feature" in page
    assert cli.main(["inspect", artifact.path]) == 0
    assert "report.html" in capsys.readouterr().out


def test_pages_render_from_plain_dicts_without_spark(trained: dict) -> None:
    manifest = trained["artifact"].manifest
    assert loss_curve_count(manifest) >= 1
    _self_contained(model_page(manifest))
    run = {"run_id": "r1", "output_rows": 0, "flagged": 0, "top_rows": {"columns": [], "rows": []}}
    page = run_page(run)  # an empty night, a model without a reference: still a page, no images needed
    assert "No rows were scored" in page and "No drift was computed" in page
    metrics = {"roc_auc": 0.9, "pr_auc": 0.5, "precision_at_k": {"100": 0.4}, "threshold": 1.0, "flagged": 3}
    assert "0.9" in evaluation_page(metrics, manifest)


def loss_curve_count(manifest: dict) -> int:
    from adspark.report.pages import loss_curves

    return len(loss_curves(manifest["training"]))
