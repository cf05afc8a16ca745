"""Input formats end to end (csv, json, orc, as YAML options), and the log of features and ignored columns."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import types as T

from adspark import pipeline
from adspark.artifact import load_artifact
from adspark.config import parse_config
from adspark.io import layout_columns
from adspark.schema import describe_roles, resolve_roles
from tests.conftest import job_dict, make_table


@pytest.mark.parametrize(("fmt", "options"), [("csv", {"header": True, "inferSchema": True}), ("json", {}),
                                              ("orc", {})])
def test_csv_json_orc_inputs_score_like_parquet(spark, trained, tmp_path: Path, fmt: str, options: dict) -> None:
    table = make_table(400, seed=41)
    sdf = spark.createDataFrame(table)
    sdf.write.parquet(str(tmp_path / "parquet"))
    getattr(sdf.write.option("header", "true") if fmt == "csv" else sdf.write, fmt)(str(tmp_path / fmt))
    reference = parse_config(job_dict(tmp_path, str(tmp_path / "parquet"), model_dir=trained["cfg"].model_dir,
                                      output={"path": str(tmp_path / "ref"), "columns": ["txn_id"]}))
    pipeline.score(spark, reference)
    cfg = parse_config(job_dict(tmp_path, str(tmp_path / fmt), model_dir=trained["cfg"].model_dir,
                                output={"path": str(tmp_path / "out"), "columns": ["txn_id"]}))
    cfg.input.format, cfg.input.options = fmt, options  # YAML scalars: `header: true`, not "true"
    report = pipeline.score(spark, cfg)
    out = pd.read_parquet(tmp_path / "out").sort_values("txn_id").reset_index(drop=True)
    ref = pd.read_parquet(tmp_path / "ref").sort_values("txn_id").reset_index(drop=True)
    assert report.output_rows == len(out) == 400 and out["txn_id"].tolist() == list(range(400))
    np.testing.assert_allclose(out["anomaly_score"], ref["anomaly_score"], rtol=1e-6)
    run = json.loads((tmp_path / "out" / "_adspark_run.json").read_text())
    assert run["timings"]["score_write_s"] > 0  # `score` records its scoring and write time


def test_yaml_scalar_options_reach_spark_as_strings() -> None:
    cfg = parse_config({"input": {"format": "csv", "options": {"header": True, "samplingRatio": 0.5, "sep": ";"}}})
    assert cfg.input.spark_options() == {"header": "true", "samplingRatio": "0.5", "sep": ";"}
    with pytest.raises(Exception, match="input.format"):
        parse_config({"input": {"format": "delta"}})


def test_log_names_features_and_ignored_columns(caplog) -> None:
    cfg = parse_config({"columns": {"id": ["id"], "numeric": ["amount"]}})
    schema = T.StructType([T.StructField(n, t) for n, t in (("id", T.LongType()), ("amount", T.DoubleType()),
                                                            ("merchant", T.StringType()), ("qty", T.IntegerType()),
                                                            ("tags", T.ArrayType(T.StringType())))])
    with caplog.at_level(logging.INFO):
        lines = describe_roles(cfg, schema, resolve_roles(cfg, schema))
    assert lines == ["features: numeric amount; categorical -",
                     "string column `merchant` ignored: list it under columns.categorical to use it",
                     "int column `qty` ignored: list it under columns.numeric (or columns.categorical) to use it",
                     "array<string> column `tags` ignored: this type cannot be a feature"]


def test_partition_columns_of_the_layout_are_not_features_by_default(spark, tmp_path: Path) -> None:
    """`dt=20261129/` is an int column to Spark; as a feature, every new night would lie outside training."""
    df = make_table(1200, seed=3)
    for dt, part in (("20261129", df.iloc[:600]), ("20261130", df.iloc[600:])):
        (tmp_path / "tx" / f"dt={dt}").mkdir(parents=True)
        part.to_parquet(tmp_path / "tx" / f"dt={dt}" / "part-0.parquet", index=False)
    cfg = parse_config(job_dict(tmp_path, str(tmp_path / "tx")))
    table = spark.read.parquet(str(tmp_path / "tx"))
    assert layout_columns(table) == ["dt"] and layout_columns(table.select("amount", "dt")) == ["dt"]
    roles = resolve_roles(cfg, table.schema, layout_columns(table))
    assert "dt" not in roles.numeric and "amount" in roles.numeric
    assert describe_roles(cfg, table.schema, roles, ["dt"])[-1] == (
        "int column `dt` ignored: a partition column of the directory layout; list it under columns.numeric to use it")
    listed = parse_config(job_dict(tmp_path, str(tmp_path / "tx"), columns={"id": ["txn_id"], "numeric": ["a", "dt"]}))
    assert resolve_roles(listed, table.schema, ["dt"]).numeric == ["a", "dt"]  # listed, it is a feature

    pipeline.train(spark, cfg)
    assert "dt" not in {c["name"] for c in load_artifact(str(cfg.model_dir)).input_schema}
    # tonight's partition: the first night's rows again, under a date training never saw
    shutil.copytree(tmp_path / "tx" / "dt=20261129", tmp_path / "tx" / "dt=20261201")
    pipeline.score(spark, cfg)
    out = pd.read_parquet(tmp_path / "out").sort_values(["dt", "txn_id"])
    first = out[out["dt"] == 20261129]["anomaly_score"].to_numpy()
    assert len(out) == 1800 and np.array_equal(out[out["dt"] == 20261201]["anomaly_score"].to_numpy(), first)


def test_a_file_in_another_format_is_one_line_naming_it(trained, tmp_path: Path, capsys) -> None:
    """A CSV file read as Parquet: Py4J's message starts "An error occurred while calling"; the line must
    carry the JVM's innermost cause, which names the file, and nothing is written."""
    import yaml

    from adspark import cli

    make_table(50, seed=3).to_csv(tmp_path / "t.csv", index=False)
    cfg = job_dict(tmp_path, str(tmp_path / "t.csv"), model_dir=str(trained["cfg"].model_dir))
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(cfg))
    assert cli.main(["score", "--config", str(tmp_path / "job.yaml")]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("adspark: error: Py4JJavaError: RuntimeException: ")
    assert f"{tmp_path / 't.csv'} is not a Parquet file" in err
    assert not (tmp_path / "out").exists()


def test_one_line_keeps_the_innermost_cause() -> None:
    from adspark.cli import _one_line

    class Py4JJavaError(Exception):
        pass

    text = ("An error occurred while calling o26.parquet.\n"
            ": org.apache.spark.SparkException: [FAILED_READ_FILE.CANNOT_READ_FILE_FOOTER] Could not read footer.\n"
            "\tat org.apache.spark.sql.X.y(X.scala:1)\n"
            "\tSuppressed: org.apache.spark.SparkException: Exception thrown in awaitResult\n"
            "Caused by: java.lang.RuntimeException: file:/d/t.csv is not a Parquet file\n"
            "\tat org.apache.parquet.Z.z(Z.java:2)\n")  # fmt: skip
    assert _one_line(Py4JJavaError(text)) == "Py4JJavaError: RuntimeException: file:/d/t.csv is not a Parquet file"
    assert _one_line(Py4JJavaError(text.split("\tat")[0])) == (
        "Py4JJavaError: SparkException: [FAILED_READ_FILE.CANNOT_READ_FILE_FOOTER] Could not read footer.")
    assert _one_line(ValueError("plain message")) == "ValueError: plain message"


def test_a_feature_with_no_value_in_the_sample_is_named() -> None:
    import pyarrow as pa

    from adspark.sampling import empty_feature_warnings

    sample = pa.table({"ok": [1.0, 2.0, float("nan")], "gone": pa.array([None, None, None], pa.float64()),
                       "inf": [float("inf"), float("-inf"), float("nan")], "flag": [True, None, False],
                       "price": pa.array([None, None, None], pa.decimal128(10, 2)),
                       "cat": pa.array([None, None, None], pa.string()), "seg": ["a", None, "b"]})  # fmt: skip
    lines = empty_feature_warnings(sample, ["ok", "gone", "inf", "flag", "price"], ["cat", "seg"])
    assert [line.split("`")[1] for line in lines] == ["gone", "inf", "price", "cat"]
    assert lines[0].startswith("numeric column `gone` has no finite value in the 3 sampled rows")
    assert lines[3].startswith("categorical column `cat` is null in all 3 sampled rows")
