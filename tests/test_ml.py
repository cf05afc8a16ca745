"""adspark.ml: the detector as Spark ML stages, in a Pipeline saved and reloaded in a fresh SparkSession."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import adspark
from adspark.errors import NotFittedError, PathError
from adspark.ml import AnomalyDetector, AnomalyDetectorModel
from tests.conftest import make_table, snapshot, write_parquet
from tests.test_cli import _env

ROWS = 2000

# A fresh interpreter and SparkSession: loads the saved PipelineModel and writes its scores.
FRESH = """
import sys
from pyspark.ml import PipelineModel
from pyspark.sql import SparkSession
spark = SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false").getOrCreate()
model = PipelineModel.load(sys.argv[1])
model.transform(spark.read.parquet(sys.argv[2])).select("txn_id", "fraud_score", "fraud_flag") \\
    .write.parquet(sys.argv[3])
spark.stop()
"""


def _detector() -> AnomalyDetector:
    return AnomalyDetector(
        idCols=["txn_id"], categoricalCols=["merchant"], excludeCols=["label"], seed=1, sampleRows=1500, epochs=4,
        thresholdValue=0.01, outputCol="fraud_score", flagCol="fraud_flag",
        config={"train": {"patience": 2, "batch_size": 32}},
    )


@pytest.fixture(scope="module")
def fitted(spark, tmp_path_factory: pytest.TempPathFactory) -> dict:
    from pyspark.ml import Pipeline
    from pyspark.ml.feature import SQLTransformer

    tmp = tmp_path_factory.mktemp("ml")
    pdf = make_table(ROWS, seed=12)
    data = write_parquet(pdf, tmp / "transactions")
    features = SQLTransformer(statement="SELECT *, b - 0.9 * a AS residual FROM __THIS__")
    pipeline = Pipeline(stages=[features, _detector()])
    df = spark.read.parquet(data)
    return {"tmp": tmp, "data": data, "df": df, "pipeline": pipeline, "model": pipeline.fit(df)}


def test_params_mirror_the_config() -> None:
    cfg = AnomalyDetector(kind="gan", idCols=["id"], thresholdMethod="fixed", thresholdValue=3.5, sampleRows=500,
                          config={"model": {"latent": 4}, "train": {"epochs": 2}}).jobConfig()
    assert (cfg.model.kind, cfg.model.latent, cfg.columns.id) == ("gan", 4, ["id"])
    assert (cfg.threshold.method, cfg.threshold.value, cfg.train.sample_rows, cfg.train.epochs) == ("fixed", 3.5,
                                                                                                     500, 2)
    assert AnomalyDetector().jobConfig() == adspark.JobConfig()


def test_pipeline_scores_every_row(fitted: dict) -> None:
    stage = fitted["model"].stages[-1]
    assert isinstance(stage, AnomalyDetectorModel)
    assert stage.model.kind == "autoencoder"
    assert stage.model.input_columns == ["amount", "a", "b", "count", "residual", "merchant"]
    assert stage.model.manifest["training"]["sample_rows"] == 1500
    scored = fitted["model"].transform(fitted["df"])
    assert scored.columns[-5:] == ["residual", "fraud_score", "fraud_flag", "anomaly_percentile", "top_features"]
    out = scored.toPandas().sort_values("txn_id")
    assert out["txn_id"].tolist() == list(range(ROWS))
    assert (out["fraud_flag"] == (out["fraud_score"] > stage.model.threshold)).all()
    assert out.loc[out["label"] == 1, "fraud_score"].median() > out["fraud_score"].quantile(0.95)
    wrapped = AnomalyDetectorModel.fromModel(stage.model, flagCol="flag")  # a model from adspark.fit/load
    assert wrapped.transform(fitted["model"].stages[0].transform(fitted["df"])).columns[-4:-2] == ["anomaly_score",
                                                                                                  "flag"]


def test_saved_pipeline_scores_the_same_in_a_fresh_session(fitted: dict) -> None:
    tmp: Path = fitted["tmp"]
    fitted["model"].write().overwrite().save(str(tmp / "pipeline"))
    stage_dir = next((tmp / "pipeline" / "stages").glob("1_AnomalyDetectorModel_*"))
    artifact = stage_dir / "artifact"
    saved = ["manifest.json", "mse_autoencoder_0.onnx", "report.html", "welsch_autoencoder_0.onnx"]  # two networks
    assert sorted(p.name for p in artifact.iterdir()) == saved
    assert adspark.load(artifact).digest == fitted["model"].stages[-1].model.digest  # a plain model directory
    proc = subprocess.run([sys.executable, "-c", FRESH, str(tmp / "pipeline"), fitted["data"], str(tmp / "fresh")],
                          env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    fresh = pd.read_parquet(tmp / "fresh").sort_values("txn_id")
    here = fitted["model"].transform(fitted["df"]).select("txn_id", "fraud_score", "fraud_flag").toPandas()
    here = here.sort_values("txn_id")
    assert fresh["txn_id"].tolist() == list(range(ROWS))
    assert np.array_equal(fresh["fraud_score"].to_numpy(), here["fraud_score"].to_numpy())
    assert np.array_equal(fresh["fraud_flag"].to_numpy(), here["fraud_flag"].to_numpy())


def test_unfitted_pipeline_round_trips(fitted: dict) -> None:
    from pyspark.ml import Pipeline

    path = str(fitted["tmp"] / "unfitted")
    fitted["pipeline"].write().overwrite().save(path)
    stage = Pipeline.load(path).getStages()[-1]
    assert isinstance(stage, AnomalyDetector)
    assert stage.jobConfig() == _detector().jobConfig()
    assert stage.getOutputCol() == "fraud_score"


def test_errors_are_typed(fitted: dict, spark) -> None:
    from pyspark.ml import PipelineModel

    with pytest.raises(adspark.ConfigError, match="threshold.value"):
        AnomalyDetector(thresholdValue=0.9)
    with pytest.raises(adspark.ConfigError, match="unknown key 'train.sample_row'"):
        AnomalyDetector(config={"train": {"sample_row": 5}})
    with pytest.raises(NotFittedError):
        AnomalyDetectorModel().transform(fitted["df"])
    stage = fitted["model"].stages[-1]
    with pytest.raises(adspark.SchemaError, match="column 'b'"):
        stage.transform(fitted["df"].withColumn("residual", fitted["df"]["amount"]).drop("b"))
    with pytest.raises(adspark.SchemaError, match="would overwrite the input column 'fraud_score'"):
        stage.transform(fitted["df"].withColumn("residual", fitted["df"]["amount"])
                        .withColumn("fraud_score", fitted["df"]["a"]))
    path = fitted["tmp"] / "tampered"
    fitted["model"].write().overwrite().save(str(path))
    onnx = next((path / "stages").glob("1_*")) / "artifact" / "welsch_autoencoder_0.onnx"
    blob = bytearray(onnx.read_bytes())
    blob[-1] ^= 1
    onnx.write_bytes(bytes(blob))
    with pytest.raises(adspark.ArtifactError, match="sha256 checksum mismatch"):
        PipelineModel.load(str(path))


def test_overwrite_replaces_only_a_saved_stage(fitted: dict) -> None:
    tmp: Path = fitted["tmp"]
    stage = fitted["model"].stages[-1]
    table = Path(fitted["data"])  # the Parquet table the pipeline was fitted on
    lake = tmp / "lake"  # a table format that keeps a `metadata` directory of its own (Iceberg's layout)
    (lake / "metadata").mkdir(parents=True)
    (lake / "metadata" / "v1.metadata.json").write_text('{\n  "format-version": 2\n}\n')
    (lake / "data").mkdir()
    (lake / "data" / "part-0.parquet").write_bytes(b"PAR1")
    notes = tmp / "notes.txt"
    notes.write_text("keep me")
    before = {p: snapshot(p) for p in (table, lake)}
    with pytest.raises(PathError, match=r"stage path file:.*transactions is a non-empty directory that is not a "
                                        r"saved Spark ML stage \(no metadata; it holds .*\.parquet"):
        stage.write().overwrite().save(str(table))
    with pytest.raises(PathError, match=r"stage path file:.*lake holds a metadata directory that is not a Spark ML"):
        stage.write().overwrite().save(str(lake))
    with pytest.raises(PathError, match="is an existing file"):
        stage.write().overwrite().save(str(notes))
    with pytest.raises(PathError, match="not a saved Spark ML stage"):
        _detector().write().overwrite().save(str(table))  # the estimator's writer too
    with pytest.raises(PathError, match="filesystem root"):
        stage.write().overwrite().save("/")
    assert {p: snapshot(p) for p in (table, lake)} == before
    assert notes.read_text() == "keep me"

    path = tmp / "stage"
    path.mkdir()
    stage.write().overwrite().save(str(path))  # an empty directory
    _detector().write().overwrite().save(str(path))  # a saved stage, replaced by another
    assert AnomalyDetector.load(str(path)).getOutputCol() == "fraud_score"
    stage.write().overwrite().save(str(path))
    assert AnomalyDetectorModel.load(str(path)).model.digest == stage.model.digest
