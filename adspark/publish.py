"""Publishing the scored output so that no run ever loses or duplicates a row.

The output is written to a staging directory next to the target and checked:
row count equals the input's, every score finite, and, when ids are configured,
the output holds exactly the input's ids with the same multiplicities. Only then
is it swapped in with filesystem renames: the whole directory, or with
`output.partition_by` only the partitions present in tonight's output (dynamic
partition overwrite). A failed or killed run leaves the previous output as it
was; a rerun replaces, never appends.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pyspark.sql import Column, DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from adspark import guard
from adspark.config import OutputConfig
from adspark.errors import OutputError
from adspark.io import HadoopPath
from adspark.schema import column, not_finite

log = logging.getLogger("adspark.publish")
RUN_MANIFEST = guard.RUN_MANIFEST
RUN_REPORT = "_adspark_report.html"
# Called on the verified staging directory before the swap: may add to the run manifest,
# write files beside it (the run report) or raise to publish nothing.
Finish = Callable[["HadoopPath", dict[str, Any]], dict[str, Any]]
# Called with the name of each publish step once it is done; tests set it to kill the process there.
STEP_HOOK: Callable[[str], None] | None = None


def _step(name: str) -> None:
    if STEP_HOOK is not None:
        STEP_HOOK(name)
QUANTILES = (0.5, 0.9, 0.99, 0.999)


@dataclass(frozen=True)
class Fingerprint:
    """Row count plus an order-independent checksum of the id columns.

    Equal fingerprints mean the same multiset of ids (up to a 64-bit hash
    collision): a lost row, a duplicated row, or one swapped for another all
    change it. Computed in one scan of the id columns, with no shuffle, so it
    costs far less than a group-by uniqueness check on a large table.
    """

    rows: int
    id_checksum: str | None


ID_PIECES = 4  # the 64-bit id hash summed as four 16-bit pieces, each in its own long


def _fingerprint_exprs(ids: list[str]) -> list[Column]:
    """Row count, and the ids' hashes summed exactly as four long sums of 16-bit pieces.

    Long sums are cheap per row where a decimal sum allocates; each piece is < 2^16,
    so no sum overflows below 2^47 rows.
    """
    exprs = [F.count(F.lit(1)).alias("rows")]
    if ids:
        row_hash = F.xxhash64(*[column(c) for c in ids])
        exprs += [F.sum(F.shiftrightunsigned(row_hash, 16 * k).bitwiseAND(F.lit(0xFFFF))).alias(f"id_sum{k}")
                  for k in range(ID_PIECES)]
    return exprs


def _from_exprs(values: dict[str, Any]) -> Fingerprint:
    """The fingerprint from `_fingerprint_exprs`' values: the checksum is the exact unsigned sum, as text."""
    if "id_sum0" not in values:
        return Fingerprint(int(values["rows"]), None)
    total = sum(int(values[f"id_sum{k}"] or 0) << (16 * k) for k in range(ID_PIECES))
    return Fingerprint(int(values["rows"]), str(total))


def fingerprint(df: DataFrame, ids: list[str]) -> Fingerprint:
    row = df.agg(*_fingerprint_exprs(ids)).first()
    assert row is not None
    return _from_exprs(row.asDict())


@dataclass
class OutputStats:
    fingerprint: Fingerprint
    flagged: int
    non_finite: int
    quantiles: dict[str, float]

    @property
    def rows(self) -> int:
        return self.fingerprint.rows


def _score_exprs(score: str, flag: str) -> list[Column]:
    return [
        F.coalesce(F.sum(column(flag).cast("long")), F.lit(0)).alias("flagged"),
        F.coalesce(F.sum(not_finite(column(score)).cast("long")), F.lit(0)).alias("non_finite"),
        F.percentile_approx(column(score), list(QUANTILES), 10000).alias("q"),
    ]


def _stats(written: Fingerprint, scores: dict[str, Any]) -> OutputStats:
    quantiles = {f"q{q}": float(v) for q, v in zip(QUANTILES, scores.get("q") or [], strict=False)}
    return OutputStats(written, int(scores["flagged"]), int(scores["non_finite"]), quantiles)


def _verify(stats: OutputStats, expected: Fingerprint, score: str = "anomaly_score") -> None:
    if stats.rows != expected.rows:
        raise OutputError(f"output check failed: {stats.rows} rows written but the input has {expected.rows}")
    if stats.fingerprint.id_checksum != expected.id_checksum:
        raise OutputError("output check failed: the output's ids differ from the input's (lost or duplicated rows)")
    if stats.non_finite:
        raise OutputError(f"output check failed: {stats.non_finite} rows have a non-finite {score}")


def observe_input(df: DataFrame, ids: list[str]) -> tuple[DataFrame, Observation]:
    """The input's row count and id checksum, gathered by the write job itself (no extra pass)."""
    observation = Observation("adspark_input")
    return df.observe(observation, *_fingerprint_exprs(ids)), observation


def publish(
    spark: SparkSession,
    df: DataFrame,
    cfg: OutputConfig,
    ids: list[str],
    source: Observation,
    run_info: dict[str, Any],
    finish: Finish | None = None,
) -> tuple[OutputStats, dict[str, Any]]:
    """Write `df` to staging, verify it against the input's fingerprint, then swap it in.

    Flag counts, non-finite scores and quantiles are observed while the output is
    written; the row count (from the Parquet footers) and the id checksum are
    read back from the files on disk, an independent check of what was committed.
    The run manifest's timings include this write and check (`score_write_s`).
    """
    assert cfg.path
    started = time.perf_counter()
    target = guard.qualified(spark, cfg.path)
    run_id = str(run_info["run_id"])
    staging = guard.staging_of(target, run_id)
    guard.before_move("output.path", target, run_id)
    scores = Observation("adspark_scores")
    try:
        writer = df.observe(scores, *_score_exprs(cfg.score_column, cfg.flag_column)).write.mode("overwrite")
        if cfg.partition_by:
            writer = writer.partitionBy(*cfg.partition_by)
        writer.parquet(staging.path)
        _step("written")
        expected = _from_exprs(source.get)
        stats = _stats(fingerprint(spark.read.parquet(staging.path), ids), scores.get)
        _verify(stats, expected, cfg.score_column)
        timings = {**run_info.get("timings", {}), "score_write_s": round(time.perf_counter() - started, 3)}
        manifest = run_manifest({**run_info, "timings": timings, "input_rows": expected.rows}, stats)
        if finish is not None:
            manifest = finish(staging, manifest)
        staging.child(RUN_MANIFEST).write_text(json.dumps(manifest, indent=2))
        _step("verified")
        guard.before_move("output.path", target, run_id)
        if cfg.partition_by and target.exists():
            _swap_partitions(staging, target, len(cfg.partition_by), run_id)
        else:
            _swap(staging, target, run_id)
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
        "id_checksum": stats.fingerprint.id_checksum,
        "score_quantiles": stats.quantiles,
    }


def _swap(staging: HadoopPath, target: HadoopPath, run_id: str) -> None:
    """Two renames: the previous output aside, the new one in; a failure between them puts it back.

    A kill between them leaves the previous output aside and the target missing:
    the next command on this output moves it back (adspark.guard.recover).
    """
    old = guard.old_of(target, run_id)
    had_old = target.exists()
    if had_old:
        target.rename_to(old)
        _step("moved_aside")
    try:
        staging.rename_to(target)
        _step("moved_in")
    except BaseException:
        if had_old and not target.exists():
            old.rename_to(target)  # put the previous output back
        raise
    if had_old:
        old.delete()
    _step("cleaned")
    log.info("published %s", target.path)


def _swap_partitions(staging: HadoopPath, target: HadoopPath, depth: int, run_id: str) -> None:
    """Replace only the partitions present in staging; the others stay as they are.

    The partitions to move are journalled before the first move. Until the commit
    marker exists, any failure (here, or a kill recovered by the next command)
    rolls every partition back from the journal; after it, the move stands.
    """
    backup = guard.old_of(target, run_id)
    partitions = [(rel, target.child(rel).exists()) for rel in staging.leaf_dirs(depth)]
    files = [(name, target.child(name).exists()) for name in (RUN_MANIFEST, RUN_REPORT, "_SUCCESS")
             if staging.child(name).exists()]
    journal = guard.write_journal(target, run_id, {"partitions": partitions, "files": files})
    _step("journalled")
    try:
        for rel, had_old in partitions:
            if had_old:
                backup.child(rel).parent().mkdirs()
                target.child(rel).rename_to(backup.child(rel))
            target.child(rel).parent().mkdirs()
            staging.child(rel).rename_to(target.child(rel))
            _step("partition_moved")
        for name, had_old in files:
            if had_old:
                backup.mkdirs()
                target.child(name).rename_to(backup.child(name))
            staging.child(name).rename_to(target.child(name))
        _step("files_moved")
        guard.commit_of(target, run_id).write_text("")
        _step("committed")
    except BaseException:
        guard.roll_back_partitions(target, run_id)  # if this fails too, the next command rolls back
        journal.delete()
        if backup.exists():
            backup.delete()
        raise
    for leftover in (backup, staging, journal, guard.commit_of(target, run_id)):
        if leftover.exists():
            leftover.delete()
    _step("cleaned")
    log.info("published %d partition(s) into %s", len(partitions), target.path)


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]
