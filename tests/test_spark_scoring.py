"""Scoring on Spark: rows conserved, schema, determinism, and errors before any write."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from adspark import pipeline
from adspark.config import parse_config
from adspark.errors import ArtifactError, SchemaError
from adspark.sampling import training_sample
from adspark.schema import resolve_roles
from adspark.scoring import (
    ARROW_MAX_BYTES,
    ARROW_MAX_RECORDS,
    NO_BYTE_CHECK,
    SPARK_MAX_BYTES,
    score_dataframe,
    score_passing,
    score_with_udf,
    size_arrow_batches,
)
from tests.conftest import N_OUTLIERS, driver_scores, job_dict, make_table, snapshot, write_parquet


@pytest.fixture(scope="module")
def scored(spark, trained, dataset):
    cfg = trained["cfg"]
    report = pipeline.score(spark, cfg)
    out = spark.read.parquet(cfg.output.path).toPandas().sort_values("txn_id").reset_index(drop=True)
    return report, out


def test_every_row_once_with_inputs_unchanged(scored, dataset) -> None:
    report, out = scored
    df = dataset[0]
    assert report.input_rows == report.output_rows == len(df) == len(out)
    assert out["txn_id"].tolist() == df["txn_id"].tolist()
    for col in df.columns:
        np.testing.assert_array_equal(out[col].to_numpy(), df[col].to_numpy())


def test_output_schema_and_flags(spark, scored, trained) -> None:
    _, out = scored
    schema = spark.read.parquet(trained["cfg"].output.path).schema
    types = {f.name: f.dataType.simpleString() for f in schema.fields}
    assert list(types)[-4:] == ["anomaly_score", "is_anomaly", "anomaly_percentile", "top_features"]
    assert types["anomaly_score"] == "double" and types["is_anomaly"] == "boolean"
    assert np.all(np.isfinite(out["anomaly_score"]))
    thr = trained["artifact"].threshold
    np.testing.assert_array_equal(out["is_anomaly"].to_numpy(), out["anomaly_score"].to_numpy() > thr)
    assert out.loc[: N_OUTLIERS - 1, "anomaly_score"].median() > np.quantile(out["anomaly_score"], 0.95)


def test_run_manifest_is_written(scored, trained) -> None:
    _, out = scored
    m = json.loads((Path(trained["cfg"].output.path) / "_adspark_run.json").read_text())
    assert m["input_rows"] == m["output_rows"] == len(out)
    assert m["flagged"] == int(out["is_anomaly"].sum())
    assert m["model_sha256"] == trained["artifact"].digest
    assert m["threshold"] == trained["artifact"].threshold


def test_spark_scores_equal_driver_scores(scored, trained, dataset) -> None:
    _, out = scored
    art = trained["artifact"]
    df = dataset[0]
    np.testing.assert_array_equal(out["anomaly_score"].to_numpy(), driver_scores(art, df))


def _scores(spark, df, artifact) -> np.ndarray:
    pdf = score_dataframe(spark, df, artifact).select("txn_id", "anomaly_score").toPandas()
    return pdf.sort_values("txn_id")["anomaly_score"].to_numpy()


def test_scores_do_not_depend_on_batches_or_partitions(spark, trained, dataset) -> None:
    df = spark.read.parquet(dataset[1])
    art = trained["artifact"]
    key = "spark.sql.execution.arrow.maxRecordsPerBatch"
    results = []
    try:
        for batch, parts in [(10000, 1), (7, 7), (7, 1), (10000, 7)]:
            spark.conf.set(key, str(batch))
            results.append(_scores(spark, df.repartition(parts), art))
    finally:
        spark.conf.unset(key)
    for other in results[1:]:
        np.testing.assert_array_equal(results[0], other)


def test_only_feature_columns_cross_into_python(spark, trained, dataset) -> None:
    df = spark.read.parquet(dataset[1])
    plan = score_dataframe(spark, df, trained["artifact"])._jdf.queryExecution().executedPlan().toString()
    udf_line = next(line for line in plan.splitlines() if "ArrowEvalPython" in line)
    for feature in ("amount", "merchant"):
        assert feature in udf_line
    for passthrough in ("txn_id", "label"):
        assert passthrough not in udf_line


def test_training_sample_ignores_partitioning(spark, trained, dataset) -> None:
    cfg = trained["cfg"]
    df = spark.read.parquet(dataset[1])
    roles = resolve_roles(cfg, df.schema)
    a = training_sample(df.repartition(1), roles, 500, 7, 4000)
    b = training_sample(df.repartition(5), roles, 500, 7, 4000)
    assert a.num_rows == 500
    assert a.equals(b)
    assert not a.equals(training_sample(df, roles, 500, 8, 4000))


def test_missing_column_fails_and_keeps_previous_output(spark, scored, trained, tmp_path: Path) -> None:
    cfg = trained["cfg"]
    before = snapshot(Path(cfg.output.path))
    bad = make_table(200).drop(columns=["b"])
    data = write_parquet(bad, tmp_path / "bad")
    with pytest.raises(SchemaError, match="column 'b'.*not in the input table"):
        pipeline.score(spark, cfg.model_copy(update={"input": cfg.input.model_copy(update={"path": data})}))
    assert snapshot(Path(cfg.output.path)) == before


def test_string_typed_numeric_is_a_schema_error(spark, trained, tmp_path: Path) -> None:
    bad = make_table(100)
    bad["amount"] = bad["amount"].astype(str)
    data = write_parquet(bad, tmp_path / "str")
    cfg = parse_config(job_dict(tmp_path, data))
    with pytest.raises(SchemaError, match="column 'amount' has type string"):
        pipeline.score(spark, cfg.model_copy(update={"model_dir": trained["cfg"].model_dir}))
    cfg2 = parse_config(job_dict(tmp_path, data, columns={"id": ["txn_id"], "numeric": ["amount"]}))
    with pytest.raises(SchemaError, match="column 'amount' \\(columns.numeric\\) has type string"):
        pipeline.train(spark, cfg2)
    assert not Path(cfg2.model_dir).exists()


def test_tampered_artifact_fails_before_writing(spark, trained, dataset, tmp_path: Path) -> None:
    import shutil

    model = tmp_path / "model"
    shutil.copytree(trained["cfg"].model_dir, model)
    onnx = next(model.glob("*.onnx"))
    onnx.write_bytes(onnx.read_bytes()[:-3] + b"xyz")
    cfg = parse_config(job_dict(tmp_path, dataset[1], model_dir=str(model)))
    with pytest.raises(ArtifactError, match="checksum mismatch"):
        pipeline.score(spark, cfg)
    assert not Path(cfg.output.path).exists()


def test_empty_table_gives_empty_output_with_full_schema(spark, trained, tmp_path: Path) -> None:
    empty = make_table(40).iloc[:0]
    data = tmp_path / "empty"
    data.mkdir()
    empty.to_parquet(data / "part-0.parquet", index=False)
    cfg = parse_config(job_dict(tmp_path, str(data), model_dir=trained["cfg"].model_dir))
    report = pipeline.score(spark, cfg)
    assert report.output_rows == 0
    out = spark.read.parquet(cfg.output.path)
    assert out.count() == 0
    assert out.columns == [*empty.columns, "anomaly_score", "is_anomaly", "anomaly_percentile", "top_features"]


def test_training_on_an_empty_table_is_refused(spark, tmp_path: Path) -> None:
    data = tmp_path / "empty"
    data.mkdir()
    make_table(40).iloc[:0].to_parquet(data / "part-0.parquet", index=False)
    cfg = parse_config(job_dict(tmp_path, str(data)))
    with pytest.raises(SchemaError, match="is empty"):
        pipeline.run(spark, cfg)
    assert not Path(cfg.model_dir).exists() and not Path(cfg.output.path).exists()


def test_run_on_an_empty_table_keeps_the_existing_model(spark, trained, tmp_path: Path) -> None:
    """A night without rows: `run` cannot train, so it scores nothing with the saved model and exits cleanly."""
    import shutil

    data = tmp_path / "empty"
    data.mkdir()
    make_table(40).iloc[:0].to_parquet(data / "part-0.parquet", index=False)
    model = tmp_path / "model"
    shutil.copytree(trained["cfg"].model_dir, model)
    before = snapshot(model)
    report = pipeline.run(spark, parse_config(job_dict(tmp_path, str(data), model_dir=str(model))))
    assert report.output_rows == 0 and report.manifest["input_rows"] == 0
    assert snapshot(model) == before  # the model was not retrained or touched
    assert spark.read.parquet(str(tmp_path / "out")).count() == 0


def test_rerun_replaces_never_duplicates(spark, trained, dataset, tmp_path: Path) -> None:
    cfg = parse_config(job_dict(tmp_path, dataset[1], model_dir=trained["cfg"].model_dir))
    pipeline.score(spark, cfg)
    first = pd.read_parquet(cfg.output.path).sort_values("txn_id")
    pipeline.score(spark, cfg)
    second = pd.read_parquet(cfg.output.path).sort_values("txn_id")
    assert len(second) == len(dataset[0])
    np.testing.assert_array_equal(first["anomaly_score"].to_numpy(), second["anomaly_score"].to_numpy())
    leftovers = [p.name for p in tmp_path.iterdir() if "adspark-" in p.name]
    assert leftovers == []


def _ordered(pdf: pd.DataFrame) -> pd.DataFrame:
    return pdf.sort_values("txn_id").reset_index(drop=True)


def test_map_in_arrow_scores_equal_the_arrow_udf_bit_for_bit(spark, trained, dataset) -> None:
    df = spark.read.parquet(dataset[1])
    art = trained["artifact"]
    udf = _ordered(score_with_udf(spark, df, art).select("txn_id", "anomaly_score", "is_anomaly").toPandas())
    key = "spark.sql.execution.arrow.maxRecordsPerBatch"
    try:
        for batch, parts in [(10000, 2), (7, 5)]:
            spark.conf.set(key, str(batch))
            mapped = _ordered(score_passing(spark, df.repartition(parts), art, ["txn_id"]).toPandas())
            assert list(mapped.columns) == ["txn_id", "anomaly_score", "is_anomaly"]
            assert len(mapped) == len(dataset[0])
            pd.testing.assert_frame_equal(mapped, udf)  # bit for bit: exact float comparison
    finally:
        spark.conf.unset(key)


def test_narrowed_output_uses_map_in_arrow_full_width_the_udf(spark, trained, dataset) -> None:
    df = spark.read.parquet(dataset[1])
    art = trained["artifact"]

    def plan(keep: list[str] | None) -> str:
        return score_dataframe(spark, df, art, keep=keep)._jdf.queryExecution().executedPlan().toString()

    assert "MapInArrow" in plan(["txn_id"]) and "ArrowEvalPython" not in plan(["txn_id"])
    assert "ArrowEvalPython" in plan(df.columns) and "MapInArrow" not in plan(df.columns)
    assert "ArrowEvalPython" in plan(None)


def test_scores_only_output(spark, scored, trained, dataset, tmp_path: Path) -> None:
    cfg = parse_config(job_dict(tmp_path, dataset[1], model_dir=trained["cfg"].model_dir,
                                output={"path": str(tmp_path / "out"), "columns": ["txn_id"], "percentile": False,
                                        "explain": 0}))
    report = pipeline.score(spark, cfg)
    written = spark.read.parquet(cfg.output.path)
    assert [(f.name, f.dataType.simpleString()) for f in written.schema.fields] == [
        ("txn_id", "bigint"), ("anomaly_score", "double"), ("is_anomaly", "boolean")]
    out = _ordered(written.toPandas())
    assert report.input_rows == report.output_rows == len(out) == len(dataset[0])
    assert out["txn_id"].tolist() == dataset[0]["txn_id"].tolist()
    full = scored[1]
    pd.testing.assert_frame_equal(out, full[list(out.columns)])
    m = json.loads((Path(cfg.output.path) / "_adspark_run.json").read_text())
    assert m["input_rows"] == m["output_rows"] == len(out) and m["flagged"] == int(out["is_anomaly"].sum())
    assert m["id_checksum"] == report.manifest["id_checksum"] is not None


def test_arrow_byte_check_is_off_only_for_row_limited_fixed_width_batches(spark) -> None:
    df = spark.range(3).selectExpr("id", "cast(id as double) x", "cast(id as string) s", "current_date() d")
    try:
        size_arrow_batches(spark, df.select("id", "x", "d"))
        assert spark.conf.get(ARROW_MAX_BYTES) == str(NO_BYTE_CHECK)
        size_arrow_batches(spark, df.select("x", "s"))  # strings: only the byte limit bounds a batch
        assert spark.conf.get(ARROW_MAX_BYTES) == str(SPARK_MAX_BYTES)
        spark.conf.set(ARROW_MAX_RECORDS, "0")  # no row limit
        size_arrow_batches(spark, df.select("x"))
        assert spark.conf.get(ARROW_MAX_BYTES) == str(SPARK_MAX_BYTES)
        spark.conf.unset(ARROW_MAX_RECORDS)
        spark.conf.set(ARROW_MAX_BYTES, "1048576")  # the user's own limit stays
        size_arrow_batches(spark, df.select("x"))
        assert spark.conf.get(ARROW_MAX_BYTES) == "1048576"
    finally:
        spark.conf.unset(ARROW_MAX_BYTES)
        spark.conf.unset(ARROW_MAX_RECORDS)
