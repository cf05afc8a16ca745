"""The library API: adspark.fit / transform / save / load on a DataFrame the caller holds."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import adspark
from tests.conftest import make_table, write_parquet
from tests.test_cli import _adspark, _call

ROWS = 2000
CONFIG = {
    "columns": {"id": ["txn_id"], "categorical": ["merchant"], "exclude": ["label"]},
    "train": {"sample_rows": 1500, "epochs": 8, "seed": 1, "patience": 2, "batch_size": 32},
    "threshold": {"method": "contamination", "value": 0.01},
}


@pytest.fixture(scope="module")
def table(spark, tmp_path_factory: pytest.TempPathFactory) -> dict:
    pdf = make_table(ROWS, seed=11)
    data = write_parquet(pdf, tmp_path_factory.mktemp("api") / "transactions")
    return {"pdf": pdf, "data": data, "df": spark.read.parquet(data)}


@pytest.fixture(scope="module")
def model(table: dict) -> adspark.AnomalyModel:
    return adspark.fit(table["df"], CONFIG)


def _by_id(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values("txn_id").reset_index(drop=True)


def test_fit_samples_like_the_job_and_reports_the_model(model: adspark.AnomalyModel) -> None:
    assert model.kind == "autoencoder"
    assert model.input_columns == ["amount", "a", "b", "count", "merchant"]
    assert model.path is None and model.threshold > 0
    assert model.threshold == model.manifest["threshold"]["threshold"]
    assert model.manifest["training"]["sample_rows"] == 1500  # train.sample_rows caps the 2000-row table


def test_transform_scores_every_row_lazily_and_writes_nothing(spark, table: dict, model, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    sc = spark.sparkContext
    sc.setJobGroup("adspark-api-lazy", "transform must not run a job")
    try:
        scored = model.transform(table["df"])
        assert list(sc.statusTracker().getJobIdsForGroup("adspark-api-lazy")) == []
    finally:
        sc.setJobGroup("", "")
    assert scored.columns == [*table["df"].columns, "anomaly_score", "is_anomaly", "anomaly_percentile",
                              "top_features"]
    out = _by_id(scored.toPandas())
    assert out["txn_id"].tolist() == list(range(ROWS))
    assert np.isfinite(out["anomaly_score"]).all()
    assert (out["is_anomaly"] == (out["anomaly_score"] > model.threshold)).all()
    outliers = out.loc[out["label"] == 1, "anomaly_score"]
    assert outliers.median() > out["anomaly_score"].quantile(0.95)
    assert 5 <= out["is_anomaly"].sum() <= 60  # contamination 0.01 of the sample, on 2000 rows
    assert list(tmp_path.iterdir()) == []


def test_saved_model_scores_bit_for_bit_like_adspark_score(spark, table: dict, model, tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    assert model.save(model_dir) is model and model.path == str(model_dir)
    saved = ["manifest.json", "mse_autoencoder_0.onnx", "report.html", "welsch_autoencoder_0.onnx"]  # two networks
    assert sorted(p.name for p in model_dir.iterdir()) == saved
    job = {**CONFIG, "input": {"path": table["data"]}, "spark": {"spark.master": "local[1]",
                                                                  "spark.ui.enabled": "false"}}
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    proc = _call([*_adspark(), "score", "--config", str(tmp_path / "job.yaml"), "--model-dir", str(model_dir),
                  "--output", str(tmp_path / "out")], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    cli = _by_id(pd.read_parquet(tmp_path / "out"))

    loaded = adspark.load(model_dir, tmp_path / "job.yaml")
    assert (loaded.digest, loaded.kind, loaded.threshold) == (model.digest, model.kind, model.threshold)
    api = _by_id(loaded.transform(spark.read.parquet(table["data"])).toPandas())
    assert list(api.columns) == list(cli.columns)
    assert np.array_equal(api["anomaly_score"].to_numpy(), cli["anomaly_score"].to_numpy())
    assert np.array_equal(api["is_anomaly"].to_numpy(), cli["is_anomaly"].to_numpy())
    before_save = _by_id(model.transform(table["df"]).toPandas())  # the fitted model, same artifact
    assert np.array_equal(before_save["anomaly_score"].to_numpy(), cli["anomaly_score"].to_numpy())


def test_config_errors_are_typed(table: dict, tmp_path: Path) -> None:
    df = table["df"]
    with pytest.raises(adspark.ConfigError, match="unknown key 'train.sample_row'"):
        adspark.fit(df, {"train": {"sample_row": 10}})
    with pytest.raises(adspark.ConfigError, match="cannot read config file"):
        adspark.fit(df, tmp_path / "missing.yaml")
    with pytest.raises(adspark.ConfigError, match="expected a dict"):
        adspark.fit(df, 42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="pyspark.sql.DataFrame"):
        adspark.fit(table["pdf"], CONFIG)  # type: ignore[arg-type]


def test_schema_errors_are_typed(spark, table: dict, model) -> None:
    df = table["df"]
    with pytest.raises(adspark.SchemaError, match="'nope'"):
        adspark.fit(df, {"columns": {"categorical": ["nope"]}})
    with pytest.raises(adspark.SchemaError, match="the DataFrame is empty"):
        adspark.fit(df.limit(0), CONFIG)
    with pytest.raises(adspark.SchemaError, match="column 'b' .* not in the input table"):
        model.transform(df.drop("b"))
    with pytest.raises(adspark.SchemaError, match=r"'anomaly_score' \(output.score_column\) would overwrite"):
        model.transform(df.withColumn("anomaly_score", df["a"]))
    with pytest.raises(adspark.SchemaError, match="'gone'"):
        adspark.AnomalyModel(model.artifact, {"output": {"columns": ["gone"]}}).transform(df)


def test_workers_that_cannot_import_adspark_are_a_config_error_before_any_task(spark, table: dict, model,
                                                                               tmp_path: Path, monkeypatch) -> None:
    """A local session whose PYSPARK_PYTHON lacks adspark: one clear error at transform, not a worker crash."""
    bare = tmp_path / "bare-python"
    bare.write_text("#!/bin/sh\necho \"ModuleNotFoundError: No module named 'adspark'\" >&2\nexit 1\n")
    bare.chmod(0o755)
    monkeypatch.setattr(spark.sparkContext, "pythonExec", str(bare))
    with pytest.raises(adspark.ConfigError, match=r"Spark's Python workers run '.*bare-python'.*No module named "
                                                  r"'adspark'.*set PYSPARK_PYTHON"):  # fmt: skip
        model.transform(table["df"])
    good = tmp_path / "python-with-adspark"  # another path to a working interpreter: probed, then accepted
    good.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    good.chmod(0o755)
    monkeypatch.setattr(spark.sparkContext, "pythonExec", str(good))
    assert model.transform(table["df"]).count() == ROWS


def test_artifact_errors_are_typed(model, tmp_path: Path) -> None:
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "todo.txt").write_text("keep me")
    with pytest.raises(adspark.PathError, match="not an adspark model directory"):
        adspark.AnomalyModel(model.artifact).save(foreign)
    assert [p.name for p in foreign.iterdir()] == ["todo.txt"]
    with pytest.raises(adspark.ArtifactError, match="does not exist"):
        adspark.load(tmp_path / "missing")
    model_dir = tmp_path / "tampered"
    shutil.copytree(adspark.AnomalyModel(model.artifact).save(tmp_path / "good").path or "", model_dir)
    onnx = model_dir / "welsch_autoencoder_0.onnx"
    blob = bytearray(onnx.read_bytes())
    blob[-1] ^= 1
    onnx.write_bytes(bytes(blob))
    with pytest.raises(adspark.ArtifactError, match="sha256 checksum mismatch"):
        adspark.load(model_dir)
    (model_dir / "model.pkl").write_bytes(b"x")
    with pytest.raises(adspark.ArtifactError, match="code-bearing"):
        adspark.load(model_dir)


def test_import_is_light_and_all_names_resolve() -> None:
    probe = ("import sys, adspark; print(sorted(m for m in ('tensorflow', 'pyspark', 'pydantic', 'adspark.api') "
             "if m in sys.modules)); [getattr(adspark, n) for n in adspark.__all__]")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
    assert adspark.SchemaError is adspark.errors.SchemaError
    assert {"fit", "load", "AnomalyModel", "SchemaError", "ArtifactError", "ConfigError"} <= set(adspark.__all__)
