"""HTML reports: the run page beside the output, the model page in the artifact, `adspark report`."""

from __future__ import annotations

import io
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


def test_the_scoring_pass_counts_tonights_flags_by_their_first_reason(scored: Path) -> None:
    import pandas as pd

    run = json.loads((scored / "_adspark_run.json").read_text())
    out = pd.read_parquet(scored)
    flagged = out[out["is_anomaly"]]
    expected = flagged["top_features"].map(lambda r: r[0]["feature"]).value_counts()
    reasons = run["flag_reasons"]
    assert reasons["column"] == "top_features" and reasons["other"] == 0 and len(flagged) > 0
    assert {r["feature"]: r["flagged"] for r in reasons["features"]} == expected.to_dict()
    assert sum(r["flagged"] for r in reasons["features"]) == run["flagged"] == len(flagged)
    assert [r["flagged"] for r in reasons["features"]] == sorted(expected, reverse=True)
    trained = json.loads((Path(run["model_dir"]) / "manifest.json").read_text())["reference"]["flag_reasons"]
    assert reasons["training_flagged"] == sum(trained.values())
    for r in reasons["features"]:
        assert r["training_share"] == trained.get(r["feature"], 0) / sum(trained.values())
    page = run_page(run)
    top = reasons["features"][0]
    assert "What drives tonight&#x27;s flags" in page and ">in training</th>" in page
    assert f"<td>{top['feature']}</td><td class=\"num\">{top['flagged']}</td>" in page


def test_the_reasons_read_as_sentences_also_under_another_column_name(scored: Path) -> None:
    run = json.loads((scored / "_adspark_run.json").read_text())
    top = run["top_rows"]
    at = top["columns"].index("top_features")
    first = top["rows"][0][at][0]
    expected = f"{first['feature']} {100 * first['share']:.3g}%"
    page = run_page(run)
    assert expected in page and "the value the model expected there" in page
    assert '<td class="lines">' + expected in page  # one reason a line
    top["columns"][at] = "why"  # output.reasons_column: why
    page = run_page(run)
    assert expected in page and "<code>why</code>: the columns contributing most" in page
    assert "no reasons are shown" not in page


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
    assert "Training loss" in page and "records no per-epoch losses" not in page
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


def _report_check():  # type: ignore[no-untyped-def]
    import importlib.util

    from tests.conftest import REPO

    spec = importlib.util.spec_from_file_location("report_check", REPO / "bench" / "report_check.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_three_pages_in_headless_chromium(spark, trained: dict, scored: Path, tmp_path: Path) -> None:
    """As a person sees them: every image decoded, nothing wider than its box or the window."""
    check = _report_check()
    if check.chromium() is None:
        pytest.skip("no Chromium installed (Debian: apt-get install chromium)")
    from adspark.evaluate import evaluate, write_report

    model_page_path = tmp_path / "model.html"
    model_page_path.write_bytes(trained["artifact"].files["report.html"])
    result = evaluate(spark, trained["cfg"], "label", scores=str(scored), by="merchant")
    evaluation = write_report(result, str(tmp_path / "eval")) / "index.html"
    for page in (scored / "_adspark_report.html", model_page_path, evaluation):
        found = check.check_page(page, width=1000)
        assert found["ok"], (page, found)
        assert found["images"] >= 3 and found["page_width"] <= found["window_width"]


# --------------------------------------------------------------------------- console


def test_progress_line_counts_tasks_rows_and_time_left() -> None:
    from adspark.progress import describe

    line = describe("scoring", 5, 20, 10.0, rows=2_000_000)
    assert "25%" in line and "5/20 tasks" in line and "~500,000 of 2,000,000 rows" in line
    assert "10 s, ~30 s left" in line and "[#####---------------]" in line
    assert "[" not in describe("scoring", 5, 20, 10.0, bar=False)


class _Stage:
    numTasks, numCompletedTasks = 8, 3


class _Tracker:
    def getActiveStageIds(self) -> list[int]:
        return [4]

    def getStageInfo(self, stage_id: int) -> _Stage:
        return _Stage()


class _Spark:
    class sparkContext:  # the attribute name Spark uses
        @staticmethod
        def statusTracker() -> _Tracker:
            return _Tracker()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_redraws_one_line_on_a_terminal_and_logs_otherwise(caplog: pytest.LogCaptureFixture) -> None:
    import logging
    import time

    from adspark.progress import Progress

    term = _Terminal()
    with Progress(_Spark(), "scoring", rows=800, stream=term, interval=0.05):
        time.sleep(0.3)
    text = term.getvalue()
    assert text.count("\r\033[K") >= 3 and "3/8 tasks" in text and "~300 of 800 rows" in text
    assert "\n" not in text and text.endswith("\r\033[K")  # one line, cleared at the end
    with caplog.at_level(logging.INFO, logger="adspark.progress"), Progress(
            _Spark(), "scoring", stream=io.StringIO(), interval=0.05):
        time.sleep(0.2)
    assert any("3/8 tasks" in r.getMessage() for r in caplog.records)


def test_a_normal_score_prints_no_future_warnings_nor_staging_warnings(trained: dict, tmp_path: Path) -> None:
    import subprocess

    import yaml

    from tests.test_cli import _adspark, _call

    cfg = trained["cfg"].model_dump(mode="json")
    table = Path(cfg["input"]["path"])
    cfg["input"]["path"] = str(table.parent / f"{{{table.name}}}")  # a glob: Spark warns about a sink log
    cfg.update(output={"path": str(tmp_path / "out")}, spark={"spark.master": "local[1]", "spark.ui.enabled": "false"})
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(cfg))
    proc: subprocess.CompletedProcess[str] = _call([*_adspark(), "score", "--config", str(tmp_path / "job.yaml")],
                                                   tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "FutureWarning" not in proc.stderr
    assert not [ln for ln in proc.stderr.splitlines() if " WARN " in ln and "adspark-" in ln]
    assert "FileStreamSink" not in proc.stderr and "FileNotFoundException" not in proc.stderr
    assert "scored 4000 rows" in proc.stdout and " INFO adspark" in proc.stderr
    quiet = _call([*_adspark(), "-q", "score", "--config", str(tmp_path / "job.yaml")], tmp_path)
    assert quiet.returncode == 0 and "scored 4000 rows" in quiet.stdout
    assert " INFO " not in quiet.stderr
    # the packaged log4j2 file: no JVM start-up chatter (default profile, log level hints, native-hadoop)
    assert not [ln for ln in quiet.stderr.splitlines() if "log4j" in ln or "setLogLevel" in ln or " WARN " in ln]


def test_the_quiet_log_config_keeps_a_users_own(tmp_path: Path) -> None:
    from adspark.session import with_quiet_log_config

    ours = with_quiet_log_config({"spark.master": "local[2]"})["spark.driver.extraJavaOptions"]
    assert ours.startswith("-Dlog4j2.configurationFile=file:") and ours.endswith("/adspark/log4j2.properties")
    added = with_quiet_log_config({"spark.driver.extraJavaOptions": "-Xss4m"})["spark.driver.extraJavaOptions"]
    assert added.startswith("-Xss4m -Dlog4j2.configurationFile=file:")
    own = {"spark.driver.extraJavaOptions": "-Dlog4j2.configurationFile=file:/etc/mine.properties"}
    assert with_quiet_log_config(own) == own
