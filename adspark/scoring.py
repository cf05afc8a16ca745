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
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.pandas.functions import ArrowUDFType

from adspark.artifact import Artifact
from adspark.decisions import Decision
from adspark.runtime import Counting, batch_scorer
from adspark.schema import OutputNames, column, feature_columns

ArrowMap = Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]

ARROW_MAX_BYTES = "spark.sql.execution.arrow.maxBytesPerBatch"
ARROW_MAX_RECORDS = "spark.sql.execution.arrow.maxRecordsPerBatch"
SPARK_MAX_BYTES = 64 * 1024 * 1024  # Spark's default for ARROW_MAX_BYTES
NO_BYTE_CHECK = 2**31 - 1  # Int.MaxValue: the one value at which Spark skips the per-row size check
FIXED_WIDTH = (T.NumericType, T.BooleanType, T.DateType, T.TimestampType, T.TimestampNTZType)


def model_feature_names(artifact: Artifact) -> list[str]:
    """The artifact's feature columns in the order they cross into Python: numeric, then categorical."""
    return [c["name"] for role in ("numeric", "categorical") for c in artifact.input_schema if c["role"] == role]


def model_features(artifact: Artifact) -> list[Column]:
    """The artifact's feature columns as they cross into Python (cast on the JVM side)."""
    names = model_feature_names(artifact)
    numeric = sum(c["role"] == "numeric" for c in artifact.input_schema)
    return feature_columns(names[:numeric], names[numeric:])


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


REASON_DDL = "array<struct<feature:string,share:double,expected:double>>"
RESULT_COL = "__adspark_result"
_SEGMENT_COL = "__adspark_cut"
MAX_RECORDED_CUTS = 1000  # segments whose cut the run manifest lists


def result_type(names: OutputNames) -> str:
    """The UDF's return type: the score alone, or a struct of score, percentile and reasons."""
    if not names.extras:
        return "double"
    fields = ["score:double"] + (["percentile:double"] if names.percentile else [])
    fields += [f"reasons:{REASON_DDL}"] if names.reasons else []
    return f"struct<{','.join(fields)}>"


def scalar_iter_udf(body: Callable[[Iterator[pa.StructArray]], Iterator[pa.Array]], returns: str = "double") -> Any:
    """An Arrow UDF (iterator form) around `body`, returning `returns` (a DDL type)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # prefers type hints; the closure has none at runtime
        return F.arrow_udf(body, returns, ArrowUDFType.SCALAR_ITER)


def with_flag(scored: DataFrame, artifact: Artifact, names: OutputNames | None = None,
              decision: Decision | None = None, ids: list[str] | None = None) -> DataFrame:
    """The flag column after the score: score > threshold, or top_k's cut (on the JVM side either way).

    The added columns end up in OutputNames.added order: score, flag, percentile, reasons.
    """
    names = names or OutputNames()
    cols = [c for c in scored.columns if c not in names.added] + [names.score]
    extras = [c for c in names.added[2:] if c in scored.columns]
    if decision is not None and decision.method == "top_k":
        flagged = flag_top_k(scored, names, decision, ids or [])
    else:
        threshold = artifact.threshold if decision is None else decision.threshold
        flagged = scored.withColumn(names.flag, F.col(names.score) > F.lit(threshold))
    return flagged.select(*[column(c) for c in cols], column(names.flag), *[column(c) for c in extras])


def rank_key(df: DataFrame, score: str, ids: list[str], derived: list[str]) -> Column:
    """Sort key of the top_k order: highest score first, then the ids, then a hash of the row (all ascending).

    The hash covers the input columns (not `derived`, the score's own outputs), so
    only rows equal in every column can swap places, which changes nothing.
    """
    hashable = [f.name for f in df.schema.fields if not isinstance(f.dataType, T.MapType) and f.name not in derived]
    tie = F.xxhash64(*[column(c) for c in hashable])
    return F.struct((-F.col(score)).alias("s"), *[column(c).alias(f"i{i}") for i, c in enumerate(ids)],
                    tie.alias("h"))


def flag_top_k(scored: DataFrame, names: OutputNames, decision: Decision, ids: list[str]) -> DataFrame:
    """Exactly `value` rows flagged per segment of `decision.by` (fewer when a segment is smaller).

    The cut (the k-th row's sort key) of every segment comes from a window limited
    to the top k rows per partition (Spark's WindowGroupLimit), so only the
    segments' cuts travel; each row is then compared with its segment's cut. The
    scored rows are persisted so the network runs once (`decision.release()` frees them). The cuts (as scores) of up
    to MAX_RECORDED_CUTS segments go to `decision.details["thresholds"]` for the run manifest.
    """
    k = int(decision.value)
    by = [column(c) for c in decision.by]
    keyed = scored.withColumn(_SEGMENT_COL, rank_key(scored, names.score, ids, names.added)).persist()
    decision.cached.append(keyed)
    win = Window.partitionBy(*by).orderBy(F.col(_SEGMENT_COL)) if by else Window.orderBy(F.col(_SEGMENT_COL))
    top = keyed.select(*by, F.col(_SEGMENT_COL), F.row_number().over(win).alias("_rank"))
    cuts = top.where(F.col("_rank") <= k).groupBy(*by).agg(F.max(_SEGMENT_COL).alias("_cut"))
    listed = cuts.select(*by, (-F.col("_cut")["s"]).alias("threshold"))
    rows = (listed.orderBy(*by) if by else listed).limit(MAX_RECORDED_CUTS).collect()
    decision.details["thresholds"] = [
        {"segment": {c: _plain(r[i]) for i, c in enumerate(decision.by)}, "threshold": float(r["threshold"])}
        for r in rows
    ]
    if by:
        cut_names = [f"_by{i}" for i in range(len(by))]
        cuts = cuts.toDF(*cut_names, "_cut")
        cond = [column(c).eqNullSafe(F.col(n)) for c, n in zip(decision.by, cut_names, strict=True)]
        joined = keyed.join(F.broadcast(cuts), on=cond, how="left").drop(*cut_names)
    else:
        joined = keyed.crossJoin(F.broadcast(cuts))
    return joined.withColumn(names.flag, F.col(_SEGMENT_COL) <= F.col("_cut")).drop(_SEGMENT_COL, "_cut")


def _plain(value: Any) -> Any:
    """A segment value as JSON can hold it."""
    return value if value is None or isinstance(value, bool | int | float | str) else str(value)


def with_score(spark: SparkSession, df: DataFrame, udf: Any, crossing: list[Column],
               names: OutputNames | None = None) -> DataFrame:
    """`df` plus the score (and percentile, reasons) = `udf` over the `crossing` columns packed in one struct."""
    names = names or OutputNames()
    size_arrow_batches(spark, df.select(*crossing))
    if not names.extras:
        return df.withColumn(names.score, udf(F.struct(*crossing)))
    out = df.withColumn(RESULT_COL, udf(F.struct(*crossing)))
    result = F.col(RESULT_COL)
    extras = [result["score"].alias(names.score)]
    if names.percentile:
        extras.append(result["percentile"].alias(names.percentile))
    if names.reasons:
        extras.append(result["reasons"].alias(names.reasons))
    return out.select(*[column(c) for c in df.columns], *extras)


def score_with_udf(spark: SparkSession, df: DataFrame, artifact: Artifact, names: OutputNames | None = None,
                   decision: Decision | None = None, ids: list[str] | None = None,
                   counting: Counting | None = None) -> DataFrame:
    """`df` with the score, flag (and percentile, reasons) appended, through the Arrow UDF."""
    names = names or OutputNames()
    body = batch_scorer(artifact.digest, broadcast_artifact(spark, artifact), names.percentile is not None,
                        names.explain if names.reasons else 0, counting)
    udf = scalar_iter_udf(body, result_type(names))
    return with_flag(with_score(spark, df, udf, model_features(artifact), names), artifact, names, decision, ids)


def map_scorer(key: str, payload: Any, keep: int, names: list[str], percentile: bool = False,
               explain: int = 0, counting: Counting | None = None) -> ArrowMap:
    """The body of the mapInArrow scorer: [kept columns | features] in, [kept columns | score...] out.

    A closure built here, not a module-level function: cloudpickle ships it by
    value with only the names it uses, so an executor imports adspark.runtime
    (numpy, pyarrow, onnxruntime) but never this module (pyspark.sql, pydantic).
    """

    def score(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from adspark.runtime import cached_scorer, counted, unpack_payload

        scorer = cached_scorer(key, lambda: unpack_payload(payload.value))
        with counted(counting) as count:
            for batch in batches:
                results = scorer.results(batch.columns[keep:], percentile, explain)
                count(batch.columns[keep:], results)
                yield pa.RecordBatch.from_arrays([*batch.columns[:keep], *results], names=names)

    return score


def score_passing(spark: SparkSession, df: DataFrame, artifact: Artifact, keep: list[str],
                  names: OutputNames | None = None, decision: Decision | None = None,
                  ids: list[str] | None = None, counting: Counting | None = None) -> DataFrame:
    """`keep` columns of `df` (unchanged), then the score, flag (and percentile, reasons), through mapInArrow."""
    names = names or OutputNames()
    fields = {f.name: f for f in df.schema.fields}
    features = [c.alias(f"_adspark_feature_{i}") for i, c in enumerate(model_features(artifact))]
    added = [T.StructField(names.score, T.DoubleType(), True)]
    if names.percentile:
        added.append(T.StructField(names.percentile, T.DoubleType(), True))
    if names.reasons:
        added.append(T.StructField(names.reasons, T.DataType.fromDDL(REASON_DDL), True))
    out = T.StructType([fields[c] for c in keep] + added)
    body = map_scorer(artifact.digest, broadcast_artifact(spark, artifact), len(keep), out.names,
                      names.percentile is not None, names.explain if names.reasons else 0, counting)
    crossing = df.select(*[column(c) for c in keep], *features)
    size_arrow_batches(spark, crossing)
    return with_flag(crossing.mapInArrow(body, out), artifact, names, decision, ids)


def arrow_safe(fields: list[T.StructField]) -> bool:
    """Whether Spark can hand these columns to Python as Arrow (intervals, variants... cannot)."""
    from pyspark.sql.pandas.types import to_arrow_type

    try:
        for field in fields:
            to_arrow_type(field.dataType)
    except Exception:  # pyspark raises several error types for unsupported ones
        return False
    return True


def score_dataframe(spark: SparkSession, df: DataFrame, artifact: Artifact, keep: list[str] | None = None,
                    passing: bool | None = None, names: OutputNames | None = None,
                    decision: Decision | None = None, ids: list[str] | None = None,
                    counting: Counting | None = None) -> DataFrame:
    """`keep` columns of `df` (default: all), then the added columns of `names`; no row added or lost.

    Narrowed outputs go through mapInArrow (only the kept columns and the features
    cross the boundary); full-width ones through the Arrow UDF, which leaves the
    other columns in the JVM (passing every column through Python as well was no
    faster, bench/README.md). `passing` forces the choice: True = mapInArrow,
    False = the Arrow UDF. `decision` (default: the artifact's threshold) sets the flag.
    `counting` counts the features for drift in the same pass (adspark/drift.py).
    """
    names = names or OutputNames()
    if keep is None:
        return score_with_udf(spark, df, artifact, names, decision, ids, counting)
    fields = {f.name: f for f in df.schema.fields}
    use = len(keep) < len(df.columns) if passing is None else passing
    if use and arrow_safe([fields[c] for c in keep]):
        return score_passing(spark, df, artifact, keep, names, decision, ids, counting)
    scored = score_with_udf(spark, df, artifact, names, decision, ids, counting)
    return scored.select(*[column(c) for c in keep], *[column(c) for c in names.added])
