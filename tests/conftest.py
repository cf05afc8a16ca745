"""Shared fixtures: one SparkSession and one small trained model for the whole session."""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

os.environ["PYSPARK_PYTHON"] = sys.executable
os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
N_OUTLIERS = 20


def make_table(n: int = 4000, seed: int = 0, outliers: int = N_OUTLIERS) -> pd.DataFrame:
    """Transactions-like data: correlated numerics, a heavy-tailed amount, a category, a label.

    The first `outliers` rows break the correlation between `a` and `b`: each sits
    15 noise standard deviations off the line b = 0.9 a, inside the marginal ranges.
    """
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    df = pd.DataFrame(
        {
            "txn_id": np.arange(n, dtype=np.int64),
            "amount": np.round(rng.lognormal(3.0, 1.0, n), 2),
            "a": a,
            "b": a * 0.9 + rng.normal(scale=0.2, size=n),
            "count": rng.poisson(3, n).astype(np.int32),
            "merchant": rng.choice(["grocery", "fuel", "travel", "online"], n, p=[0.5, 0.3, 0.1, 0.1]),
            "label": np.zeros(n, dtype=np.int8),
        }
    )
    side = np.where(np.arange(outliers) % 2 == 0, 1.0, -1.0)
    df.loc[: outliers - 1, "b"] = df.loc[: outliers - 1, "a"] * 0.9 + 3.0 * side
    df.loc[: outliers - 1, "label"] = 1
    return df


PAIRS = ["x1", "x2", "x3", "x4"]


def pairs_table(n: int, seed: int) -> pa.Table:
    """Two hidden factors, each seen through two noisy columns (x1, x2 = z1 + noise; x3, x4 = z2 + noise)."""
    r = np.random.default_rng(seed)
    z1, z2 = r.normal(size=n), r.normal(size=n)
    return pa.table({c: z + 0.3 * r.normal(size=n) for c, z in zip(PAIRS, (z1, z1, z2, z2), strict=True)})


def write_parquet(df: pd.DataFrame, path: Path, files: int = 3) -> str:
    path.mkdir(parents=True, exist_ok=True)
    for i, part in enumerate(np.array_split(np.arange(len(df)), files)):
        df.iloc[part].to_parquet(path / f"part-{i}.parquet", index=False)
    return str(path)


def snapshot(path: Path) -> dict[str, str]:
    """Every file under `path` with its sha256: proves an output was left byte-for-byte intact."""
    files = (p for p in path.rglob("*") if p.is_file())
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def driver_scores(artifact: object, df: pd.DataFrame) -> np.ndarray:
    """`make_table` rows scored on the driver, straight from the artifact (the executors' reference)."""
    from adspark.runtime import build_scorer

    scorer = build_scorer(artifact.manifest, artifact.files)  # type: ignore[attr-defined]
    cols = [pa.array(df[c].astype("float64")) for c in ["amount", "a", "b", "count"]]
    return scorer.score_arrays([*cols, pa.array(df["merchant"])])


def job_dict(tmp: Path, data: str, **extra: object) -> dict[str, object]:
    base: dict[str, object] = {
        "input": {"path": data},
        "columns": {"id": ["txn_id"], "categorical": ["merchant"], "exclude": ["label"]},
        # a short training for speed: min_steps 0 keeps it at `epochs`
        "train": {"sample_rows": 3000, "epochs": 6, "seed": 1, "patience": 2, "batch_size": 32, "min_steps": 0},
        "threshold": {"method": "contamination", "value": 0.01},
        "output": {"path": str(tmp / "out")},
        "model_dir": str(tmp / "model"),
    }
    base.update(extra)
    return base


@pytest.fixture(scope="session")
def spark() -> Iterator[object]:
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("adspark-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.driver.memory", "2g")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, str]:
    df = make_table()
    return df, write_parquet(df, tmp_path_factory.mktemp("data") / "transactions")


@pytest.fixture(scope="session")
def trained(spark: object, dataset: tuple[pd.DataFrame, str], tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A model trained once through the pipeline, plus the config that made it."""
    from adspark import pipeline
    from adspark.artifact import load_artifact
    from adspark.config import parse_config

    tmp = tmp_path_factory.mktemp("trained")
    cfg = parse_config(job_dict(tmp, dataset[1]))
    report = pipeline.train(spark, cfg)  # type: ignore[arg-type]
    return {"cfg": cfg, "tmp": tmp, "report": report, "artifact": load_artifact(str(cfg.model_dir))}


@pytest.fixture(scope="session")
def small_detector() -> tuple[object, pa.Table]:
    """A detector fitted in memory (no Spark) on `make_table` data, plus that table."""
    from adspark.config import parse_config
    from adspark.models import make_detector

    df = make_table(3000, seed=3)
    table = pa.table({c: df[c].astype("float64") for c in ["amount", "a", "b", "count"]} | {"merchant": df["merchant"]})
    cfg = parse_config({"train": {"epochs": 8, "seed": 0, "patience": 3, "batch_size": 32, "min_steps": 0}})
    det = make_detector(cfg, ["amount", "a", "b", "count"], ["merchant"]).fit(table)
    return det, table
