"""Spark side of scoring: the model's features cross into Python, the scores come back.

The artifact travels to executors as broadcast bytes and every path scores with
the worker's cached scorer from adspark.runtime, so scores are the same bit for
bit whichever path ran. Two Spark operators are used:

- `score_with_udf`: a scalar Arrow UDF over the feature columns only (cast on
  the JVM side, packed in one struct); all other columns stay in the JVM and
  Spark rejoins the scores to them. Used for full-width outputs.
- `score_passing`: `DataFrame.mapInArrow` over the kept columns plus the cast
  features; Python hands the kept columns back with the score appended, so the
  JVM neither buffers the input rows nor rejoins a result. Used for narrowed
  outputs (`output.columns`), where the kept columns are few.

`score_dataframe` picks one.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa
from pyspark.broadcast import Broadcast
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.pandas.functions import ArrowUDFType

from adspark.artifact import Artifact
from adspark.runtime import batch_scorer
from adspark.schema import FLAG_COL, SCORE_COL, column, feature_columns

ArrowMap = Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]

# Which outputs go through mapInArrow; benchmarks flip these for A/B runs
# (bench/_adspark_job.py). Full-width outputs keep the Arrow UDF: passing every
# column through Python as well was no faster (bench/README.md).
MAP_IN_ARROW_NARROW = True
MAP_IN_ARROW_FULL_WIDTH = False

ARROW_MAX_BYTES = "spark.sql.execution.arrow.maxBytesPerBatch"
ARROW_MAX_RECORDS = "spark.sql.execution.arrow.maxRecordsPerBatch"
SPARK_MAX_BYTES = 64 * 1024 * 1024  # Spark's default for ARROW_MAX_BYTES
NO_BYTE_CHECK = 2**31 - 1  # Int.MaxValue: the one value at which Spark skips the per-row size check
FIXED_WIDTH = (T.NumericType, T.BooleanType, T.DateType, T.TimestampType, T.TimestampNTZType)


def _feature_names(artifact: Artifact, role: str) -> list[str]:
    return [c["name"] for c in artifact.input_schema if c["role"] == role]


def model_features(artifact: Artifact) -> list[Column]:
    """The artifact's feature columns as they cross into Python (cast on the JVM side)."""
    return feature_columns(_feature_names(artifact, "numeric"), _feature_names(artifact, "categorical"))


def _bytes_setting(value: str) -> int | None:
    try:
        return int(value.lower().removesuffix("b"))
    except ValueError:  # "64m" and the like: a unit the user wrote, so the user's choice
        return None


def size_arrow_batches(spark: SparkSession, crossing: DataFrame) -> None:
    """Bound Arrow batches of fixed-width columns by their row count alone.

    Spark 4 measures an Arrow batch's bytes after every row it appends unless
    maxBytesPerBatch is exactly Int.MaxValue; on 30 doubles that check was 7% of
    the JVM's CPU (bench/README.md, "JVM profile"). When every column crossing
    into Python is fixed-width, maxRecordsPerBatch already bounds a batch's bytes,
    so the check is switched off; with strings, or without a row limit, Spark's
    default stays. A byte limit the user set is never touched.
    """
    current = _bytes_setting(str(spark.conf.get(ARROW_MAX_BYTES)))
    if current not in (SPARK_MAX_BYTES, NO_BYTE_CHECK):
        return
    row_limited = int(str(spark.conf.get(ARROW_MAX_RECORDS))) > 0
    fixed = all(isinstance(f.dataType, FIXED_WIDTH) for f in crossing.schema.fields)
    spark.conf.set(ARROW_MAX_BYTES, str(NO_BYTE_CHECK if fixed and row_limited else SPARK_MAX_BYTES))


def broadcast_artifact(spark: SparkSession, artifact: Artifact) -> Broadcast[tuple[str, dict[str, bytes]]]:
    """The artifact as (manifest JSON, {file: bytes}), for runtime.unpack_payload on the executors."""
    return spark.sparkContext.broadcast((json.dumps(artifact.manifest), artifact.files))


def scalar_iter_udf(body: Callable[[Iterator[pa.StructArray]], Iterator[pa.Array]]) -> Any:
    """A double-valued Arrow UDF (iterator form) around `body`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # prefers type hints; the closure has none at runtime
        return F.arrow_udf(body, "double", ArrowUDFType.SCALAR_ITER)


def with_flag(scored: DataFrame, artifact: Artifact) -> DataFrame:
    """`is_anomaly` = `anomaly_score` > the artifact's threshold, on the JVM side."""
    return scored.withColumn(FLAG_COL, F.col(SCORE_COL) > F.lit(artifact.threshold))


def with_score(spark: SparkSession, df: DataFrame, udf: Any, crossing: list[Column]) -> DataFrame:
    """`df` plus `anomaly_score` = `udf` over the `crossing` columns packed in one struct."""
    size_arrow_batches(spark, df.select(*crossing))
    return df.withColumn(SCORE_COL, udf(F.struct(*crossing)))


def score_with_udf(spark: SparkSession, df: DataFrame, artifact: Artifact) -> DataFrame:
    """`df` with `anomaly_score` (double) and `is_anomaly` (boolean) appended, through the Arrow UDF."""
    udf = scalar_iter_udf(batch_scorer(artifact.digest, broadcast_artifact(spark, artifact)))
    return with_flag(with_score(spark, df, udf, model_features(artifact)), artifact)


def map_scorer(key: str, payload: Any, keep: int, names: list[str]) -> ArrowMap:
    """The body of the mapInArrow scorer: [kept columns | features] in, [kept columns | score] out.

    A closure built here, not a module-level function: cloudpickle ships it by
    value with only the names it uses, so an executor imports adspark.runtime
    (numpy, pyarrow, onnxruntime) but never this module (pyspark.sql, pydantic).
    """

    def score(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from adspark.runtime import cached_scorer, unpack_payload

        scorer = cached_scorer(key, lambda: unpack_payload(payload.value))
        for batch in batches:
            scores = pa.array(scorer.score_arrays(batch.columns[keep:]), type=pa.float64())
            yield pa.RecordBatch.from_arrays([*batch.columns[:keep], scores], names=names)

    return score


def score_passing(spark: SparkSession, df: DataFrame, artifact: Artifact, keep: list[str]) -> DataFrame:
    """`keep` columns of `df` (unchanged), then `anomaly_score` and `is_anomaly`, through mapInArrow."""
    fields = {f.name: f for f in df.schema.fields}
    features = [c.alias(f"_adspark_feature_{i}") for i, c in enumerate(model_features(artifact))]
    out = T.StructType([fields[c] for c in keep] + [T.StructField(SCORE_COL, T.DoubleType(), True)])
    body = map_scorer(artifact.digest, broadcast_artifact(spark, artifact), len(keep), out.names)
    crossing = df.select(*[column(c) for c in keep], *features)
    size_arrow_batches(spark, crossing)
    return with_flag(crossing.mapInArrow(body, out), artifact)


def arrow_safe(fields: list[T.StructField]) -> bool:
    """Whether Spark can hand these columns to Python as Arrow (intervals, variants... cannot)."""
    from pyspark.sql.pandas.types import to_arrow_type

    try:
        for field in fields:
            to_arrow_type(field.dataType)
    except Exception:  # pyspark raises several error types for unsupported ones
        return False
    return True


def score_dataframe(spark: SparkSession, df: DataFrame, artifact: Artifact, keep: list[str] | None = None) -> DataFrame:
    """`keep` columns of `df` (default: all), then `anomaly_score` and `is_anomaly`; no row added or lost.

    Narrowed outputs go through mapInArrow (only the kept columns and the features
    cross the boundary); full-width ones through the Arrow UDF, which leaves the
    other columns in the JVM.
    """
    if keep is None:
        return score_with_udf(spark, df, artifact)
    fields = {f.name: f for f in df.schema.fields}
    narrow = len(keep) < len(df.columns)
    use = MAP_IN_ARROW_NARROW if narrow else MAP_IN_ARROW_FULL_WIDTH
    if use and arrow_safe([fields[c] for c in keep]):
        return score_passing(spark, df, artifact, keep)
    return score_with_udf(spark, df, artifact).select(*[column(c) for c in keep], SCORE_COL, FLAG_COL)
