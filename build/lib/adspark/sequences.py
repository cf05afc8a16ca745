"""Spark side of sequence models: ordering streams, sampling stream pieces, scoring in order.

Order: events are grouped into streams by `columns.entity` (the whole table is
one stream without it) and ordered by `columns.timestamp`, nulls first, ties
broken by the id columns and then a hash of the whole row, so the order never
depends on how the input arrived.

Scoring: one shuffle by stream key puts every stream wholly in one partition,
sorted within the partition (Spark's external sort spills, so a huge stream
costs time, not memory). One Arrow UDF then walks the partition in order and
carries only the last `window` events from batch to batch: the state is bounded
whatever the stream's length. Only the stream key and the features cross into
Python; every other column stays in the JVM.

Training: the unit of sampling is a piece of a stream, (stream, time block),
chosen by a seeded hash, so the sample holds whole runs of consecutive events
and does not depend on partitioning.
"""

from __future__ import annotations

import logging
import math

import pyarrow as pa
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from adspark.artifact import Artifact
from adspark.runtime.sequence import STREAM_COL, sequence_batch_scorer
from adspark.schema import Roles, column, feature_columns
from adspark.scoring import broadcast_artifact, scalar_iter_udf, with_flag, with_score

log = logging.getLogger("adspark.sequences")
TIE_COL = "__adspark_tie"
_UNIT_COL = "__adspark_unit"
# A sampled stream piece holds about this many windows' worth of events.
PIECE_WINDOWS = 16


def stream_key(entity: list[str]) -> Column:
    """int64 stream key: a hash of the entity columns (collisions matter only between neighbours in sort order)."""
    return F.xxhash64(*[column(c) for c in entity]) if entity else F.lit(0).cast("long")


def tie_breaker(df: DataFrame, ids: list[str]) -> Column:
    """A hash of the id columns, then of every other hashable column: equal rows may swap, nothing else can."""
    hashable = [f.name for f in df.schema.fields if not isinstance(f.dataType, T.MapType)]
    return F.xxhash64(*[column(c) for c in ids + [c for c in hashable if c not in ids]])


def with_order(df: DataFrame, roles: Roles) -> tuple[DataFrame, list[Column]]:
    """`df` plus the stream key and tie-breaker columns, and the sort order of one stream."""
    assert roles.timestamp is not None
    keyed = df.withColumn(STREAM_COL, stream_key(roles.entity)).withColumn(TIE_COL, tie_breaker(df, roles.ids))
    order = [F.col(STREAM_COL), *[column(c).asc_nulls_first() for c in roles.entity]]
    order += [column(roles.timestamp).asc_nulls_first(), F.col(TIE_COL)]
    return keyed, order


def _time_number(df: DataFrame, ts: str) -> Column:
    dtype = df.schema[ts].dataType
    if isinstance(dtype, T.TimestampType | T.TimestampNTZType):
        return F.unix_micros(column(ts).cast("timestamp")).cast("double")
    if isinstance(dtype, T.DateType):
        return F.unix_date(column(ts)).cast("double")
    return column(ts).cast("double")


def sequence_sample(df: DataFrame, roles: Roles, max_rows: int, seed: int, total_rows: int, window: int) -> pa.Table:
    """Whole pieces of streams, in stream order, with the piece as the stream key (at most ~max_rows events)."""
    assert roles.timestamp is not None
    keyed, order = with_order(df, roles)
    features = feature_columns(roles.numeric, roles.categorical)
    if total_rows <= max_rows:
        return keyed.orderBy(*order).select(STREAM_COL, *features).toArrow()
    t = _time_number(df, roles.timestamp)
    stats = keyed.agg(F.min(t).alias("lo"), F.max(t).alias("hi"), F.approx_count_distinct(STREAM_COL).alias("n"))
    row = stats.first()
    assert row is not None
    lo, hi, streams = row["lo"] or 0.0, row["hi"] or 0.0, max(int(row["n"]), 1)
    blocks = max(1, math.ceil(total_rows / streams / (PIECE_WINDOWS * window)))
    span = (hi - lo) / blocks if hi > lo else 1.0
    block = F.coalesce(F.floor((t - F.lit(lo)) / F.lit(span)), F.lit(-1)).cast("long")
    unit = F.xxhash64(F.col(STREAM_COL), block, F.lit(seed))
    bound = int(min(1.0, max_rows / total_rows) * (2**63 - 1))  # |hash| < bound: a seeded fraction of the pieces
    chosen = keyed.withColumn(_UNIT_COL, unit).where(F.abs(F.col(_UNIT_COL)) < F.lit(bound))
    ordered = chosen.orderBy(F.col(_UNIT_COL), *order[1:]).select(F.col(_UNIT_COL).alias(STREAM_COL), *features)
    table = ordered.toArrow()
    log.info("training sample: %d events in pieces of %d blocks per stream, of %d events", table.num_rows, blocks,
             total_rows)
    return table


def score_sequences(spark: SparkSession, df: DataFrame, artifact: Artifact, ids: list[str]) -> DataFrame:
    """`df` with `anomaly_score` and `is_anomaly`, each event scored against its own stream's history."""
    names = {role: [c["name"] for c in artifact.input_schema if c["role"] == role]
             for role in ("numeric", "categorical", "entity", "timestamp")}
    roles = Roles(ids, names["numeric"], names["categorical"], names["entity"], names["timestamp"][0])
    keyed, order = with_order(df, roles)
    spread = keyed.repartition(F.col(STREAM_COL)) if roles.entity else keyed.repartition(1)
    ordered = spread.sortWithinPartitions(*order)
    body = sequence_batch_scorer(artifact.digest, broadcast_artifact(spark, artifact))
    # Nondeterministic: the optimizer must not move the UDF away from the sorted order it relies on.
    udf = scalar_iter_udf(body).asNondeterministic()
    scored = with_score(spark, ordered, udf, [F.col(STREAM_COL), *feature_columns(roles.numeric, roles.categorical)])
    return with_flag(scored.drop(STREAM_COL, TIE_COL), artifact)
