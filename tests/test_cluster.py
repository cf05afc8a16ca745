"""A real Spark standalone cluster on 127.0.0.1: a master and two workers from the installed pyspark.

Executors run a Python environment with numpy, pandas, pyarrow and onnxruntime only (no TensorFlow,
no adspark): the job ships its own code and the model travels as broadcast bytes. `jobs/nightly_sweep.py`
trains on the driver and scores on the executors; its scores must equal local mode's for the artifact it
wrote, and a scores-only `jobs/score_only.py` run (the mapInArrow path) must agree with it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.conftest import REPO, driver_scores, job_dict

pytestmark = pytest.mark.network  # the executors' bare venv is pip-installed from the package index

EXECUTOR_PACKAGES = ["numpy", "pandas", "pyarrow", "onnxruntime"]


def _spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port}")


@pytest.fixture(scope="module")
def executor_python(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A bare venv for executors: the scoring runtime's dependencies and nothing else."""
    env_dir = tmp_path_factory.mktemp("executor-env")
    subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True)
    python = str(env_dir / "bin" / "python")
    subprocess.run([python, "-m", "pip", "install", "-q", *EXECUTOR_PACKAGES], check=True, timeout=900)
    probe = "import importlib.util as u; print([m for m in ('tensorflow', 'keras', 'adspark') if u.find_spec(m)])"
    found = subprocess.run([python, "-c", probe], cwd=env_dir, capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[]"
    return python


def _start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("cluster")
    home = _spark_home()
    env = dict(os.environ, SPARK_HOME=str(home), SPARK_LOCAL_IP="127.0.0.1", SPARK_LOG_DIR=str(tmp))
    port = _free_port()
    spark_class = str(home / "bin" / "spark-class")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        master_cmd = [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                      "--port", str(port), "--webui-port", str(_free_port())]
        procs.append(_start(master_cmd, env, tmp / "master.log"))
        _wait_for_port(port)
        url = f"spark://127.0.0.1:{port}"
        for i in range(2):
            work = tmp / f"worker{i}"
            work.mkdir()
            worker_cmd = [spark_class, "org.apache.spark.deploy.worker.Worker", url, "--host", "127.0.0.1",
                          "--cores", "1", "--memory", "1g", "--webui-port", str(_free_port()),
                          "--work-dir", str(work)]
            procs.append(_start(worker_cmd, env, tmp / f"worker{i}.log"))
        time.sleep(5)  # let the workers register
        yield url
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def _submit(cluster: str, executor_python: str, job: str, cfg: dict[str, object], cwd: Path) -> str:
    """spark-submit `job` with `cfg` to the cluster; returns the driver's output (asserts success)."""
    cfg_path = cwd / f"{job}.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    env = dict(os.environ, SPARK_LOCAL_IP="127.0.0.1")
    env.pop("PYSPARK_PYTHON", None)  # the executors' Python comes from spark.pyspark.python
    env.pop("PYSPARK_DRIVER_PYTHON", None)
    args = [
        str(_spark_home() / "bin" / "spark-submit"), "--master", cluster,
        "--conf", f"spark.pyspark.python={executor_python}",
        "--conf", f"spark.pyspark.driver.python={sys.executable}",
        "--conf", "spark.executor.memory=1g", "--conf", "spark.cores.max=2",
        "--conf", "spark.ui.enabled=false", "--conf", "spark.driver.host=127.0.0.1",
        str(REPO / "jobs" / f"{job}.py"), "--config", str(cfg_path),
    ]
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return proc.stdout + proc.stderr


def _read(path: object) -> pd.DataFrame:
    return pd.read_parquet(str(path)).sort_values("txn_id").reset_index(drop=True)


@pytest.fixture(scope="module")
def sweep(cluster, executor_python, dataset, tmp_path_factory) -> dict[str, Any]:
    """`adspark run` on the cluster: trained on the driver, scored by the executors."""
    tmp = tmp_path_factory.mktemp("sweep")
    cfg = job_dict(tmp, dataset[1])
    log = _submit(cluster, executor_python, "nightly_sweep", cfg, tmp)
    return {"cfg": cfg, "tmp": tmp, "log": log, "out": _read(cfg["output"]["path"])}  # type: ignore[index]


def test_nightly_sweep_on_a_standalone_cluster(sweep, spark, dataset) -> None:
    from adspark import pipeline
    from adspark.artifact import load_artifact
    from adspark.config import parse_config

    assert "shipped adspark code to executors" in sweep["log"]
    out, df = sweep["out"], dataset[0]
    assert out["txn_id"].tolist() == df["txn_id"].tolist()  # every row exactly once
    pd.testing.assert_frame_equal(out[list(df.columns)], df, check_dtype=False)  # inputs unchanged
    model_dir = sweep["cfg"]["model_dir"]
    run = json.loads((Path(sweep["cfg"]["output"]["path"]) / "_adspark_run.json").read_text())
    assert run["input_rows"] == run["output_rows"] == len(df)
    local_cfg = parse_config(job_dict(sweep["tmp"], dataset[1], model_dir=model_dir,
                                      output={"path": str(sweep["tmp"] / "local")}))
    pipeline.score(spark, local_cfg)  # the cluster's artifact, scored in local mode
    local = _read(local_cfg.output.path)
    np.testing.assert_array_equal(out["anomaly_score"].to_numpy(), local["anomaly_score"].to_numpy())
    np.testing.assert_array_equal(out["is_anomaly"].to_numpy(), local["is_anomaly"].to_numpy())
    np.testing.assert_array_equal(out["anomaly_score"].to_numpy(), driver_scores(load_artifact(model_dir), df))


def test_scores_only_output_on_a_standalone_cluster(sweep, cluster, executor_python, dataset) -> None:
    """The mapInArrow path (output.columns) on the bare executors, with the sweep's model."""
    tmp = sweep["tmp"]
    cfg = job_dict(tmp, dataset[1], model_dir=sweep["cfg"]["model_dir"],
                   output={"path": str(tmp / "scores"), "columns": ["txn_id"]})
    _submit(cluster, executor_python, "score_only", cfg, tmp)
    out, full = _read(tmp / "scores"), sweep["out"]
    assert list(out.columns) == ["txn_id", "anomaly_score", "is_anomaly", "anomaly_percentile", "top_features"]
    assert out["txn_id"].tolist() == dataset[0]["txn_id"].tolist()
    flat = list(out.columns)[:-1]  # top_features holds arrays: compared as text
    pd.testing.assert_frame_equal(out[flat], full[flat])
    assert out["top_features"].astype(str).tolist() == full["top_features"].astype(str).tolist()


def test_lstm_sweep_on_a_standalone_cluster(cluster, executor_python, spark, tmp_path) -> None:
    """model.kind lstm: streams sorted and scored by the bare executors, equal to local mode bit for bit."""
    from adspark import pipeline
    from adspark.config import parse_config
    from tests.conftest import write_parquet
    from tests.test_lstm import event_log, lstm_job

    df = event_log(hosts=10, per_host=120, bad=4)
    data = write_parquet(df, tmp_path / "events", files=3)
    cfg = lstm_job(tmp_path, data, train={"epochs": 3, "seed": 0, "batch_size": 64})
    _submit(cluster, executor_python, "nightly_sweep", cfg, tmp_path)
    out = pd.read_parquet(tmp_path / "out").sort_values("event_id").reset_index(drop=True)
    assert out["event_id"].tolist() == sorted(df["event_id"])  # every event exactly once
    local_cfg = parse_config({**cfg, "output": {"path": str(tmp_path / "local")}})
    pipeline.score(spark, local_cfg)  # the cluster's artifact, scored in local mode
    local = pd.read_parquet(tmp_path / "local").sort_values("event_id").reset_index(drop=True)
    np.testing.assert_array_equal(out["anomaly_score"].to_numpy(), local["anomaly_score"].to_numpy())
