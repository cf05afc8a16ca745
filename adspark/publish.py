"""Publishing the scored output so that no run ever loses or duplicates a row.

The output is written to a staging directory next to the target and checked:
row count equals the input's, every score finite, and every id once (when ids
are configured). Only then is it swapped in with filesystem renames: the whole
directory, or with `output.partition_by` only the partitions present in
tonight's output (dynamic partition overwrite). A failed or killed run leaves
the previous output as it was; a rerun replaces, never appends.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from adspark.config import OutputConfig
from adspark.errors import OutputError
from adspark.io import HadoopPath
from adspark.schema import FLAG_COL, SCORE_COL

log = logging.getLogger("adspark.publish")
RUN_MANIFEST = "_adspark_run.json"
QUANTILES = (0.5, 0.9, 0.99, 0.999)


@dataclass
class OutputStats:
    rows: int
    flagged: int
    non_finite: int
    quantiles: dict[str, float]
    duplicate_ids: int = 0


def output_stats(spark: SparkSession, path: str, ids: list[str]) -> OutputStats:
    """One pass over the written score column, plus an id-uniqueness pass when ids are configured."""
    written = spark.read.parquet(path)
    finite = F.col(SCORE_COL).isNotNull() & ~F.isnan(SCORE_COL) & (F.abs(SCORE_COL) != F.lit(float("inf")))
    row = written.agg(
        F.count(F.lit(1)).alias("rows"),
        F.sum(F.col(FLAG_COL).cast("long")).alias("flagged"),
        F.sum((~finite).cast("long")).alias("non_finite"),
        F.percentile_approx(SCORE_COL, list(QUANTILES), 10000).alias("q"),
    ).first()
    assert row is not None
    quantiles = {f"q{q}": float(v) for q, v in zip(QUANTILES, row["q"] or [], strict=False)}
    stats = OutputStats(int(row["rows"]), int(row["flagged"] or 0), int(row["non_finite"] or 0), quantiles)
    if ids and stats.rows:
        stats.duplicate_ids = duplicate_ids(written, ids)
    return stats


def duplicate_ids(df: DataFrame, ids: list[str]) -> int:
    """Rows beyond the first for each id value."""
    dup = df.groupBy(*[F.col(f"`{c}`") for c in ids]).count().where(F.col("count") > 1)
    row = dup.agg(F.sum(F.col("count") - 1).alias("extra")).first()
    return int(row["extra"] or 0) if row else 0


def _verify(stats: OutputStats, expected_rows: int, input_duplicates: int | None) -> None:
    if stats.rows != expected_rows:
        raise OutputError(f"output check failed: {stats.rows} rows written but the input has {expected_rows}")
    if stats.non_finite:
        raise OutputError(f"output check failed: {stats.non_finite} rows have a non-finite {SCORE_COL}")
    if stats.duplicate_ids and stats.duplicate_ids != input_duplicates:
        raise OutputError(f"output check failed: {stats.duplicate_ids} duplicate ids in the output")


def publish(
    spark: SparkSession,
    df: DataFrame,
    cfg: OutputConfig,
    ids: list[str],
    expected_rows: int,
    run_info: dict[str, Any],
    source: DataFrame | None = None,
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
        stats = output_stats(spark, staging.path, ids)
        input_dups = None
        if stats.duplicate_ids and source is not None:
            # Duplicate ids already in the input are the data's, not ours: keep them, say so.
            input_dups = duplicate_ids(source, ids)
            log.warning("the input has %d rows with a repeated id; they are kept as they are", input_dups)
        _verify(stats, expected_rows, input_dups)
        manifest = run_manifest(run_info, stats)
        staging.child(RUN_MANIFEST).write_text(json.dumps(manifest, indent=2))
        if cfg.partition_by and target.exists():
            _swap_partitions(spark, staging, target, len(cfg.partition_by), run_id)
        else:
            _swap(spark, staging, target, run_id)
    except BaseException:
        if staging.exists():
            staging.delete()
        raise
    return stats, manifest


def run_manifest(run_info: dict[str, Any], stats: OutputStats) -> dict[str, Any]:
    return {
        **run_info,
        "output_rows": stats.rows,
        "flagged": stats.flagged,
        "flagged_rate": stats.flagged / stats.rows if stats.rows else 0.0,
        "duplicate_ids_in_input": stats.duplicate_ids,
        "score_quantiles": stats.quantiles,
    }


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


def _swap_partitions(spark: SparkSession, staging: HadoopPath, target: HadoopPath, depth: int, run_id: str) -> None:
    """Replace only the partitions present in staging; the others stay as they are."""
    backup = HadoopPath(spark, target.sibling(f".adspark-old-{run_id}"))
    moved: list[tuple[str, bool]] = []
    try:
        for rel in staging.leaf_dirs(depth):
            had_old = target.child(rel).exists()
            if had_old:
                backup.child(rel).parent().mkdirs()
                target.child(rel).rename_to(backup.child(rel))
            target.child(rel).parent().mkdirs()
            staging.child(rel).rename_to(target.child(rel))
            moved.append((rel, had_old))
        for name in (RUN_MANIFEST, "_SUCCESS"):
            if staging.child(name).exists():
                if target.child(name).exists():
                    target.child(name).delete()
                staging.child(name).rename_to(target.child(name))
    except BaseException:
        for rel, had_old in reversed(moved):  # roll back what was already swapped
            target.child(rel).delete()
            if had_old:
                backup.child(rel).rename_to(target.child(rel))
        raise
    if backup.exists():
        backup.delete()
    staging.delete()
    log.info("published %d partition(s) into %s", len(moved), target.path)


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]
