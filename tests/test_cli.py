"""End to end through the real command line and spark-submit, as subprocesses."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.conftest import REPO, job_dict, make_table, snapshot, write_parquet


def _adspark() -> list[str]:
    script = Path(sys.executable).parent / "adspark"
    return [str(script)] if script.exists() else [sys.executable, "-m", "adspark.cli"]


def _spark_submit() -> str:
    import pyspark

    return str(Path(pyspark.__file__).parent / "bin" / "spark-submit")


def _env() -> dict[str, str]:
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return env


def _call(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=600)


def run_kind(tmp_path: Path, model: dict[str, object]) -> pd.DataFrame:
    """`adspark run` (a subprocess, local[2]) of `model` on the 1,500-row table; its output, every row once."""
    df = make_table(1500, seed=5)
    cfg = job_dict(tmp_path, write_parquet(df, tmp_path / "data"), model=model,
                   spark={"spark.master": "local[2]", "spark.ui.enabled": "false"})  # fmt: skip
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(cfg))
    ran = _call([*_adspark(), "run", "--config", str(tmp_path / "job.yaml")], tmp_path)
    assert ran.returncode == 0, ran.stderr[-3000:]
    out = pd.read_parquet(tmp_path / "out").sort_values("txn_id")
    assert out["txn_id"].tolist() == list(range(1500))  # every row once
    return out


def _last_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    return lines[-1] if lines else ""


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("cli")
    df = make_table(1500, seed=5)
    data = write_parquet(df, tmp / "transactions")
    cfg = job_dict(tmp, data, spark={"spark.master": "local[2]", "spark.ui.enabled": "false"})
    (tmp / "job.yaml").write_text(yaml.safe_dump(cfg))
    return {"tmp": tmp, "df": df, "config": str(tmp / "job.yaml"), "data": data}


@pytest.fixture(scope="module")
def ran(job: dict) -> subprocess.CompletedProcess[str]:
    proc = _call([*_adspark(), "run", "--config", job["config"]], job["tmp"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_cli_run_scores_every_row(ran, job: dict) -> None:
    assert "scored 1500 rows, flagged 15 (1.00%)" in ran.stdout
    run = json.loads((job["tmp"] / "out" / "_adspark_run.json").read_text())
    top = run["flag_reasons"]["features"][0]  # the summary names the column behind most flags
    assert f", most for {top['feature']} ({top['flagged'] / 15:.0%} of flags); wrote" in ran.stdout
    assert "epoch 1/6" in ran.stderr  # training progress is in the log
    assert "absl::InitializeLog" not in ran.stderr  # TensorFlow's native INFO lines are held to its log level
    assert not [ln for ln in ran.stderr.splitlines() if ln.startswith(("I0000 ", "W0000 "))]
    out = pd.read_parquet(job["tmp"] / "out").sort_values("txn_id")
    assert out["txn_id"].tolist() == list(range(1500))
    assert out["anomaly_score"].dtype == np.float64 and out["is_anomaly"].dtype == bool
    assert out.loc[out["label"] == 1, "anomaly_score"].median() > out["anomaly_score"].quantile(0.95)


def test_cli_score_with_saved_model_reproduces_scores(ran, job: dict) -> None:
    tmp = job["tmp"]
    proc = _call(
        [*_adspark(), "score", "--config", job["config"], "--model-dir", str(tmp / "model"),
         "--output", str(tmp / "rescored"), "--set", "threshold.method=top_k", "--set", "threshold.value=7",
         "--set", "output.percentile=false"],
        tmp,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "flagged 7 (0.47%) at top 7" in proc.stdout  # --set reached the job
    first = pd.read_parquet(tmp / "out").sort_values("txn_id")["anomaly_score"].to_numpy()
    rescored = pd.read_parquet(tmp / "rescored").sort_values("txn_id")
    np.testing.assert_array_equal(first, rescored["anomaly_score"].to_numpy())
    assert "anomaly_percentile" not in rescored.columns and int(rescored["is_anomaly"].sum()) == 7


def test_cli_inspect(ran, job: dict) -> None:
    proc = _call([*_adspark(), "inspect", str(job["tmp"] / "model")], job["tmp"])
    assert proc.returncode == 0
    assert "kind          autoencoder" in proc.stdout
    assert "networks      one per loss: mse + welsch (score: geometric mean of theirs)" in proc.stdout
    assert "merchant" in proc.stdout and "threshold" in proc.stdout


def test_spark_submit_nightly_sweep(job: dict) -> None:
    tmp = job["tmp"]
    proc = _call(
        [_spark_submit(), "--master", "local[2]", "--conf", "spark.ui.enabled=false",
         str(REPO / "jobs" / "nightly_sweep.py"), "--config", job["config"],
         "--output", str(tmp / "submitted"), "--model-dir", str(tmp / "submitted_model")],
        tmp,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "scored 1500 rows" in proc.stdout
    out = pd.read_parquet(tmp / "submitted")
    assert sorted(out["txn_id"]) == list(range(1500))
    assert (tmp / "submitted_model" / "manifest.json").exists()


def test_unknown_config_key_is_one_clear_line(job: dict) -> None:
    bad = job["tmp"] / "bad.yaml"
    bad.write_text("input: {path: x}\ntrian: {epochs: 3}\n")
    proc = _call([*_adspark(), "run", "--config", str(bad)], job["tmp"])
    assert proc.returncode == 2
    assert _last_line(proc) == f"adspark: error: {bad}: unknown key 'trian'"


def test_missing_column_fails_cleanly_and_keeps_output(ran, job: dict) -> None:
    tmp = job["tmp"]
    before = snapshot(tmp / "out")
    data = write_parquet(job["df"].drop(columns=["a"]), tmp / "no_a")
    proc = _call([*_adspark(), "score", "--config", job["config"], "--model-dir", str(tmp / "model"),
                  "--input", data], tmp)
    assert proc.returncode == 2
    assert "column 'a'" in _last_line(proc) and "not in the input table" in _last_line(proc)
    assert snapshot(tmp / "out") == before


def test_tampered_model_fails_before_spark_and_keeps_output(ran, job: dict) -> None:
    tmp = job["tmp"]
    model = tmp / "tampered"
    shutil.copytree(tmp / "model", model)
    onnx = next(model.glob("*.onnx"))
    onnx.write_bytes(onnx.read_bytes() + b"\0")
    before = snapshot(tmp / "out")
    proc = _call([*_adspark(), "score", "--config", job["config"], "--model-dir", str(model)], tmp)
    assert proc.returncode == 2
    assert "checksum mismatch" in _last_line(proc) and onnx.name in _last_line(proc)
    assert "SparkContext" not in proc.stderr  # no Spark was started
    assert snapshot(tmp / "out") == before


def test_cli_gan_train_then_score(job: dict) -> None:
    tmp = job["tmp"]
    cfg = yaml.safe_load(Path(job["config"]).read_text())
    cfg["model"] = {"kind": "gan"}
    gan_cfg = tmp / "gan.yaml"
    gan_cfg.write_text(yaml.safe_dump(cfg))
    trained = _call([*_adspark(), "train", "--config", str(gan_cfg), "--model-dir", str(tmp / "gan_model")], tmp)
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "kind          gan" in _call([*_adspark(), "inspect", str(tmp / "gan_model")], tmp).stdout
    scored = _call([*_adspark(), "score", "--config", str(gan_cfg), "--model-dir", str(tmp / "gan_model"),
                    "--output", str(tmp / "gan_out")], tmp)
    assert scored.returncode == 0, scored.stderr[-3000:]
    out = pd.read_parquet(tmp / "gan_out").sort_values("txn_id")
    assert out["txn_id"].tolist() == list(range(1500))
    assert np.all(np.isfinite(out["anomaly_score"]))
    assert out.loc[out["label"] == 1, "anomaly_score"].median() > out["anomaly_score"].quantile(0.9)
