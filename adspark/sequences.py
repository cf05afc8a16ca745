"""Spark side of sequence models: ordering streams, sampling stream pieces, scoring in order.

Order: events are grouped into streams by `columns.entity` (the whole table is
one stream without it) and ordered by `columns.timestamp`, nulls first, ties
broken by the id columns and then a hash of the whole row, so the order never
depends on how the input arrived.

Scoring: streams of at most `block_events` events are shuffled by stream key,
so each lies wholly in one partition, sorted within it. A longer stream (a table
without `columns.entity`, or one chatty entity) is cut into blocks of
`block_events` consecutive events, scored in parallel: every event gets its
exact position in its stream, block = position // block_events, and the last
`window` events of each block are copied into the next block as context rows.
The scorer reads context rows as history only and they are dropped after it, so
each event sees exactly the `window` events before it: the scores are the same,
bit for bit, as one sequential scan of the stream. The context flag crosses into
Python too, so that drift counting in the same pass skips context rows. Positions come from a
row_number over (stream, time bucket) plus the bucket's offset, so no step sorts
a whole stream on one core either. One Arrow UDF walks each partition in order
and carries only the last `window` events from batch to batch. Only the segment
key, the context flag and the features cross into Python; every other column stays in the JVM.

Training: the unit of sampling is a piece of a stream, (stream, time block),
chosen by a seeded hash, so the sample holds whole runs of consecutive events
and does not depend on partitioning. Pieces are taken in hash order up to
`train.sample_rows` events, a hard cap (the last piece may be cut short).
"""

from __future__ import annotations

import logging
import math

import pyarrow as pa
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from adspark.artifact import Artifact
from adspark.decisions import Decision
from adspark.runtime import Counting
from adspark.runtime.sequence import STREAM_COL, sequence_batch_scorer
from adspark.schema import OutputNames, Roles, column, feature_columns
from adspark.scoring import broadcast_artifact, result_type, scalar_iter_udf, with_flag, with_score

log = logging.getLogger("adspark.sequences")
TIE_COL = "__adspark_tie"
_UNIT_COL = "__adspark_unit"
_BLOCK_COL = "__adspark_block"
_POS_COL = "__adspark_pos"
_CONTEXT_COL = "__adspark_context"
_BUCKET_COL = "__adspark_bucket"
_SEGMENT_COL = "__adspark_segment"
# Default of model.block_events: events per parallel block of a long stream.
BLOCK_EVENTS = 50_000
# A sampled stream piece holds about this many windows' worth of events.
PIECE_WINDOWS = 16
# Pieces are drawn for this many times train.sample_rows events, then cut at train.sample_rows.
OVERSAMPLE = 1.3


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
    """Whole pieces of streams, in stream order, with the piece as the stream key: at most max_rows events."""
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
    # |hash| < bound: a seeded share of the pieces, a little more than max_rows events on average;
    # the limit then makes max_rows a hard cap (only the last piece taken may be cut short).
    bound = int(min(1.0, OVERSAMPLE * max_rows / total_rows) * (2**63 - 1))
    chosen = keyed.withColumn(_UNIT_COL, unit).where(F.abs(F.col(_UNIT_COL)) < F.lit(bound))
    ordered = chosen.orderBy(F.col(_UNIT_COL), *order[1:]).limit(max_rows)
    table = ordered.select(F.col(_UNIT_COL).alias(STREAM_COL), *features).toArrow()
    log.info("training sample: %d events in pieces of %d blocks per stream, of %d events", table.num_rows, blocks,
             total_rows)
    return table


def _finite(t: Column) -> Column:
    return F.when(~F.isnan(t) & (F.abs(t) < F.lit(math.inf)), t)


def long_streams(keyed: DataFrame, t: Column, block: int) -> DataFrame:
    """Streams of more than `block` events: key, events, first and last finite time, number of blocks.

    At most (rows / block) of them, so the result is small; it is computed on its
    own (a column-pruned aggregate) so that a table of short streams keeps the
    plain one-shuffle plan.
    """
    stats = keyed.groupBy(STREAM_COL).agg(F.count(F.lit(1)).alias("n"), F.min(_finite(t)).alias("lo"),
                                          F.max(_finite(t)).alias("hi"))
    return stats.where(F.col("n") > block).withColumn("k", F.ceil(F.col("n") / F.lit(block)).cast("long"))


def _time_bucket(t: Column) -> Column:
    """A bucket of equal time width, k per long stream, non-decreasing along the stream's order.

    Null times sort first (bucket -1), NaN last (bucket k); ±inf fall in the end buckets.
    Only the parallelism of the position step depends on how even the buckets are.
    """
    k, lo, span = F.col("k"), F.col("lo"), F.col("hi") - F.col("lo")
    x = F.when(span > 0, (t - lo) / span * k).otherwise(F.lit(0.0))
    inside = F.floor(F.least(F.greatest(x, F.lit(0.0)), k - F.lit(0.5)))
    return F.when(t.isNull(), F.lit(-1)).when(F.isnan(t), k).otherwise(inside).cast("long")


def with_blocks(keyed: DataFrame, order: list[Column], t: Column, long: DataFrame, block: int,
                window: int) -> DataFrame:
    """Events of long streams with their block, plus the context rows each block needs.

    Position in the stream = row number within (stream, time bucket) + the events of
    the stream's earlier buckets. An event among the `window` events before a later
    block's start is also emitted as a context row of that block (of several blocks
    when `block` < `window`).
    """
    events = keyed.join(F.broadcast(long), STREAM_COL).withColumn(_BUCKET_COL, _time_bucket(t))
    counts = events.groupBy(STREAM_COL, _BUCKET_COL).count()
    before = Window.partitionBy(STREAM_COL).orderBy(_BUCKET_COL).rowsBetween(Window.unboundedPreceding, -1)
    offsets = counts.select(STREAM_COL, _BUCKET_COL, F.coalesce(F.sum("count").over(before), F.lit(0)).alias("off"))
    rank = F.row_number().over(Window.partitionBy(STREAM_COL, _BUCKET_COL).orderBy(*order[1:]))
    pos = F.col("off") + rank - F.lit(1)
    placed = (events.join(F.broadcast(offsets), [STREAM_COL, _BUCKET_COL]).withColumn(_POS_COL, pos)
              .withColumn(_BLOCK_COL, ((F.col(_POS_COL) - F.col(_POS_COL) % block) / block).cast("long")))
    # Block j needs positions j*block - window .. j*block - 1: for position p, blocks p // block + 1
    # up to (p + window) // block, and only blocks that exist.
    last = F.least(((F.col(_POS_COL) + window) / block).cast("long"), ((F.col("n") - 1) / block).cast("long"))
    first = F.col(_BLOCK_COL) + 1
    context = (placed.where(first <= last).withColumn(_BLOCK_COL, F.explode(F.sequence(first, last)))
               .withColumn(_CONTEXT_COL, F.lit(True)))
    helpers = ["n", "lo", "hi", "k", "off", _BUCKET_COL]
    return placed.withColumn(_CONTEXT_COL, F.lit(False)).unionByName(context).drop(*helpers)


def score_sequences(spark: SparkSession, df: DataFrame, artifact: Artifact, ids: list[str],
                    block_events: int = BLOCK_EVENTS, outputs: OutputNames | None = None,
                    decision: Decision | None = None, counting: Counting | None = None) -> DataFrame:
    """`df` with the score, flag (and percentile, reasons), each event scored against its own stream's history.

    Streams longer than `block_events` are scored in
    parallel blocks with the same scores as a sequential scan (see the module doc).
    `counting` counts every event's features for drift in the same pass (context rows excluded).
    """
    outputs = outputs or OutputNames()
    names = {role: [c["name"] for c in artifact.input_schema if c["role"] == role]
             for role in ("numeric", "categorical", "entity", "timestamp")}
    roles = Roles(ids, names["numeric"], names["categorical"], names["entity"], names["timestamp"][0])
    window = int(artifact.manifest["model"]["window"])
    block = int(block_events)
    keyed, order = with_order(df, roles)
    t = _time_number(df, names["timestamp"][0])
    long = long_streams(keyed, t, block).collect()
    if long:
        log.info("%d stream(s) longer than %d events: scored in %d parallel blocks", len(long), block,
                 sum(r["k"] for r in long))
        stats = spark.createDataFrame(long, f"`{STREAM_COL}` long, n long, lo double, hi double, k long")
        lengths = F.broadcast(stats.select(STREAM_COL, F.lit(True).alias("long")))
        marked = keyed.join(lengths, STREAM_COL, "left")
        short = (marked.where(F.col("long").isNull()).drop("long").withColumn(_BLOCK_COL, F.lit(0).cast("long"))
                 .withColumn(_POS_COL, F.lit(None).cast("long")).withColumn(_CONTEXT_COL, F.lit(False)))
        blocked = with_blocks(keyed, order, t, stats, block, window)
        spread = short.unionByName(blocked).repartition(F.col(STREAM_COL), F.col(_BLOCK_COL))
        ordered = spread.sortWithinPartitions(F.col(STREAM_COL), F.col(_BLOCK_COL), F.col(_POS_COL), *order[1:])
        segment = F.xxhash64(F.col(STREAM_COL), F.col(_BLOCK_COL))
        context = F.col(_CONTEXT_COL)
    else:
        spread = keyed.repartition(F.col(STREAM_COL)) if roles.entity else keyed.repartition(1)
        ordered = spread.sortWithinPartitions(*order)
        segment = F.col(STREAM_COL)
        context = F.lit(False)
    body = sequence_batch_scorer(artifact.digest, broadcast_artifact(spark, artifact),
                                 outputs.percentile is not None, outputs.explain if outputs.reasons else 0, counting)
    # Nondeterministic: the optimizer must not move the UDF away from the sorted order it relies on.
    udf = scalar_iter_udf(body, result_type(outputs)).asNondeterministic()
    crossing = [segment.alias(_SEGMENT_COL), context.alias(_CONTEXT_COL),
                *feature_columns(roles.numeric, roles.categorical)]
    scored = with_score(spark, ordered, udf, crossing, outputs)
    if long:
        scored = scored.where(~F.col(_CONTEXT_COL)).drop(_BLOCK_COL, _POS_COL, _CONTEXT_COL)
    return with_flag(scored.drop(STREAM_COL, TIE_COL), artifact, outputs, decision, ids)
