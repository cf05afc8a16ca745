"""Reading the input table and publishing the scored output safely.

The output is written to a staging directory next to the target, checked (row
count, finite scores), and only then swapped in place of the previous output
with filesystem renames. A failed or killed run leaves the previous output as it
was. Paths go through Hadoop's FileSystem API, so hdfs://, s3a:// and local
paths behave alike.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from adspark.config import InputConfig, OutputConfig
from adspark.errors import ConfigError, OutputError, SchemaError
from adspark.schema import FLAG_COL, SCORE_COL

log = logging.getLogger("adspark.io")
RUN_MANIFEST = "_adspark_run.json"


class HadoopPath:
    """A path on whichever filesystem its URI names (local, HDFS, S3...)."""

    def __init__(self, spark: SparkSession, path: str) -> None:
        jvm = spark.sparkContext._jvm
        assert jvm is not None
        self._jvm = jvm
        self.jpath = jvm.org.apache.hadoop.fs.Path(path)
        self.fs = self.jpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
        self.path = str(self.fs.makeQualified(self.jpath).toString())

    def sibling(self, suffix: str) -> str:
        parent = self.jpath.getParent()
        return str(self._jvm.org.apache.hadoop.fs.Path(parent, f".{self.jpath.getName()}{suffix}").toString())

    def exists(self) -> bool:
        return bool(self.fs.exists(self.jpath))

    def delete(self) -> None:
        self.fs.delete(self.jpath, True)

    def rename_to(self, other: HadoopPath) -> None:
        if not self.fs.rename(self.jpath, other.jpath):
            raise OutputError(f"could not rename {self.path} to {other.path}")

    def write_text(self, text: str) -> None:
        stream = self.fs.create(self.jpath, True)
        try:
            stream.write(bytearray(text.encode()))
        finally:
            stream.close()


def read_table(spark: SparkSession, cfg: InputConfig) -> DataFrame:
    if not cfg.path:
        raise ConfigError("config: input.path is not set (set it in the YAML file or pass --input)")
    if not HadoopPath(spark, cfg.path).exists():
        raise SchemaError(f"input path {cfg.path!r} does not exist")
    reader = spark.read.format(cfg.format).options(**cfg.options)
    if cfg.format == "csv" and "header" not in cfg.options:
        reader = reader.option("header", "true").option("inferSchema", "true")
    return reader.load(cfg.path)


def check_output_target(spark: SparkSession, cfg: OutputConfig) -> None:
    """Fail before any work when the output exists and mode is `error`."""
    if not cfg.path:
        raise ConfigError("config: output.path is not set (set it in the YAML file or pass --output)")
    if cfg.mode == "error" and HadoopPath(spark, cfg.path).exists():
        raise OutputError(f"output path {cfg.path!r} already exists and output.mode is 'error'")


@dataclass
class OutputStats:
    rows: int
    flagged: int
    non_finite: int
    quantiles: dict[str, float]


def output_stats(spark: SparkSession, path: str) -> OutputStats:
    """One pass over the written score column: counts, flags and non-finite scores."""
    written = spark.read.parquet(path)
    finite = F.col(SCORE_COL).isNotNull() & ~F.isnan(SCORE_COL) & (F.abs(SCORE_COL) != F.lit(float("inf")))
    row = written.agg(
        F.count(F.lit(1)).alias("rows"),
        F.sum(F.col(FLAG_COL).cast("long")).alias("flagged"),
        F.sum((~finite).cast("long")).alias("non_finite"),
        F.percentile_approx(SCORE_COL, [0.5, 0.9, 0.99, 0.999], 10000).alias("q"),
    ).first()
    assert row is not None
    qs = row["q"] or []
    names = ["q0.5", "q0.9", "q0.99", "q0.999"]
    quantiles = dict(zip(names, qs, strict=False))
    return OutputStats(int(row["rows"]), int(row["flagged"] or 0), int(row["non_finite"] or 0), quantiles)


def publish(
    spark: SparkSession,
    df: DataFrame,
    cfg: OutputConfig,
    expected_rows: int,
    run_info: dict[str, Any],
) -> tuple[OutputStats, dict[str, Any]]:
    """Write `df` to staging, verify it, then swap it in for the previous output."""
    assert cfg.path
    target = HadoopPath(spark, cfg.path)
    run_id = str(run_info["run_id"])
    staging = HadoopPath(spark, target.sibling(f".adspark-staging-{run_id}"))
    try:
        writer = df.write.mode("overwrite")
        if cfg.partition_by:
            writer = writer.partitionBy(*cfg.partition_by)
        writer.parquet(staging.path)
        stats = output_stats(spark, staging.path)
        _verify(stats, expected_rows)
        manifest = {**run_info, "output_rows": stats.rows, "flagged": stats.flagged,
                    "flagged_rate": stats.flagged / stats.rows if stats.rows else 0.0,
                    "score_quantiles": stats.quantiles}
        HadoopPath(spark, f"{staging.path}/{RUN_MANIFEST}").write_text(json.dumps(manifest, indent=2))
        _swap(spark, staging, target, run_id)
    except BaseException:
        if staging.exists():
            staging.delete()
        raise
    return stats, manifest


def _verify(stats: OutputStats, expected_rows: int) -> None:
    if stats.rows != expected_rows:
        raise OutputError(f"output check failed: {stats.rows} rows written but the input has {expected_rows}")
    if stats.non_finite:
        raise OutputError(f"output check failed: {stats.non_finite} rows have a non-finite {SCORE_COL}")


def _swap(spark: SparkSession, staging: HadoopPath, target: HadoopPath, run_id: str) -> None:
    old = HadoopPath(spark, target.sibling(f".adspark-old-{run_id}"))
    had_old = target.exists()
    if had_old:
        target.rename_to(old)
    try:
        staging.rename_to(target)
    except BaseException:
        if had_old and not target.exists():
            old.rename_to(target)  # put the previous output back
        raise
    if had_old:
        old.delete()
    log.info("published %s", target.path)


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]
