"""A real Spark standalone cluster on 127.0.0.1: a master and two workers from the installed pyspark.

Executors run a Python environment with numpy, pandas, pyarrow and onnxruntime only (no TensorFlow,
no adspark): the job ships its own code and the model travels as broadcast bytes.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.conftest import REPO, driver_scores, job_dict

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


def test_nightly_sweep_on_a_standalone_cluster(cluster, executor_python, trained, dataset, tmp_path: Path) -> None:
    cfg = job_dict(tmp_path, dataset[1], model_dir=trained["cfg"].model_dir)
    cfg_path = tmp_path / "job.yaml"
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
        str(REPO / "jobs" / "score_only.py"), "--config", str(cfg_path),
    ]
    proc = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert "shipped adspark code to executors" in proc.stdout + proc.stderr
    out = pd.read_parquet(cfg["output"]["path"]).sort_values("txn_id").reset_index(drop=True)  # type: ignore[index]
    df = dataset[0]
    assert out["txn_id"].tolist() == df["txn_id"].tolist()  # every row exactly once
    local = pd.read_parquet(trained["cfg"].output.path) if Path(trained["cfg"].output.path).exists() else None
    np.testing.assert_array_equal(out["anomaly_score"].to_numpy(), driver_scores(trained["artifact"], df))
    if local is not None:
        local = local.sort_values("txn_id")
        np.testing.assert_array_equal(out["anomaly_score"].to_numpy(), local["anomaly_score"].to_numpy())
