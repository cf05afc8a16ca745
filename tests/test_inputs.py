"""Input formats end to end (csv, json, orc, as YAML options), and the log of features and ignored columns."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import types as T

from adspark import pipeline
from adspark.config import parse_config
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
