"""The job's three commands: train, score, and run (train then score)."""

from __future__ import annotations

import logging
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession

from adspark import __version__
from adspark.artifact import MANIFEST, Artifact, load_artifact, save_artifact
from adspark.artifact import build_manifest as _build_manifest
from adspark.config import JobConfig
from adspark.errors import SchemaError
from adspark.guard import guarded
from adspark.io import check_output_target, read_table
from adspark.models import make_detector
from adspark.publish import new_run_id, observe_input, publish
from adspark.sampling import training_sample
from adspark.schema import (
    FLAG_COL,
    SCORE_COL,
    Roles,
    check_against_artifact,
    check_no_missing,
    column,
    input_schema_record,
    output_columns,
    resolve_roles,
)
from adspark.scoring import score_dataframe
from adspark.sequences import score_sequences, sequence_sample

log = logging.getLogger("adspark")


@dataclass
class RunReport:
    run_id: str
    input_rows: int = 0
    output_rows: int = 0
    flagged: int = 0
    threshold: float = float("nan")
    model_dir: str = ""
    output_path: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)


def _count(df: DataFrame, report: RunReport) -> int:
    """Input rows, needed up front to size the training sample (Parquet: from file metadata)."""
    with _Timer(report, "count_s"):
        report.input_rows = df.count()
    return report.input_rows


class _Timer:
    def __init__(self, report: RunReport, name: str) -> None:
        self.report, self.name = report, name

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.report.timings[self.name] = round(time.perf_counter() - self.start, 3)


def _sample(cfg: JobConfig, df: DataFrame, roles: Roles, rows: int) -> pa.Table:
    t = cfg.train
    if cfg.model.kind == "lstm":
        return sequence_sample(df, roles, t.sample_rows, t.seed, rows, cfg.model.window)
    return training_sample(df, roles, t.sample_rows, t.seed, rows)


def _train_on(cfg: JobConfig, df: DataFrame, rows: int, report: RunReport) -> Artifact:
    assert cfg.model_dir
    roles: Roles = resolve_roles(cfg, df.schema)
    if rows == 0:
        raise SchemaError(f"input table {cfg.input.path!r} is empty: there is nothing to train on")
    if cfg.preprocess.on_missing == "fail":
        check_no_missing(df, roles.numeric)
    with _Timer(report, "sample_s"):
        sample = _sample(cfg, df, roles, rows)
    log.info("training %s on %d sampled rows, %d features", cfg.model.kind, sample.num_rows, len(roles.features))
    with _Timer(report, "train_s"):
        detector = make_detector(cfg, roles.numeric, roles.categorical).fit(sample)
    manifest = _build_manifest(detector.manifest_(), detector.files_, input_schema_record(roles, df.schema))
    artifact = save_artifact(cfg.model_dir, manifest, detector.files_)
    log.info("saved model to %s (threshold %.6g)", cfg.model_dir, artifact.threshold)
    report.model_dir, report.threshold = cfg.model_dir, artifact.threshold
    return artifact


def _guarded(spark: SparkSession, cfg: JobConfig, report: RunReport, uses: list[str],
             writes: list[str]) -> AbstractContextManager[object]:
    """Path checks, leases and recovery of dead runs (adspark.guard), before any data is read."""
    values = {"input.path": cfg.input.path, "output.path": cfg.output.path, "model_dir": cfg.model_dir}
    return guarded(spark, {k: str(values[k]) for k in uses}, writes, report.run_id)


def train(spark: SparkSession, cfg: JobConfig) -> RunReport:
    cfg.require("input.path", "model_dir")
    report = RunReport(new_run_id())
    with _guarded(spark, cfg, report, ["input.path", "model_dir"], ["model_dir"]):
        df = read_table(spark, cfg.input)
        resolve_roles(cfg, df.schema)  # fail on a bad schema before counting rows
        _count(df, report)
        _train_on(cfg, df, report.input_rows, report)
    return report


def _scored(spark: SparkSession, df: DataFrame, artifact: Artifact, cols: list[str], ids: list[str]) -> DataFrame:
    """The output columns plus the scores; sequence models score each event in its stream's order."""
    if artifact.kind == "lstm":
        scored = score_sequences(spark, df, artifact, ids)
        return scored.select(*[column(c) for c in cols], SCORE_COL, FLAG_COL)
    return score_dataframe(spark, df, artifact, keep=cols)


def _score_with(spark: SparkSession, cfg: JobConfig, df: DataFrame, artifact: Artifact, report: RunReport) -> None:
    assert cfg.output.path
    ids = list(cfg.columns.id)
    cols = output_columns(cfg, df, ids)
    observed, source = observe_input(df, ids)
    scored = _scored(spark, observed, artifact, cols, ids)
    run_info = {
        "run_id": report.run_id,
        "adspark_version": __version__,
        "config_sha256": cfg.digest(),
        "model_sha256": artifact.digest,
        "model_dir": artifact.path,
        "model_kind": artifact.kind,
        "threshold": artifact.threshold,
        "input_path": cfg.input.path,
        "timings": report.timings,
    }
    with _Timer(report, "score_write_s"):
        stats, manifest = publish(spark, scored, cfg.output, ids, source, run_info)
    report.input_rows, report.output_rows = int(manifest["input_rows"]), stats.rows
    report.flagged, report.manifest = stats.flagged, manifest
    report.threshold, report.output_path = artifact.threshold, cfg.output.path


def score(spark: SparkSession, cfg: JobConfig, artifact: Artifact | None = None) -> RunReport:
    """Score with a saved artifact; pass `artifact` when the caller already verified it."""
    cfg.require("input.path", "output.path", "model_dir")
    assert cfg.model_dir
    report = RunReport(new_run_id(), model_dir=cfg.model_dir)
    artifact = artifact or load_artifact(cfg.model_dir)  # integrity first: before any data is read
    with _guarded(spark, cfg, report, ["input.path", "output.path", "model_dir"], ["output.path"]):
        check_output_target(spark, cfg.output)
        df = read_table(spark, cfg.input)
        check_against_artifact(artifact.input_schema, df.schema, cfg.model_dir)
        if artifact.manifest["preprocessing"]["on_missing"] == "fail":
            check_no_missing(df, [c["name"] for c in artifact.input_schema if c["role"] == "numeric"])
        output_columns(cfg, df, list(cfg.columns.id))
        _score_with(spark, cfg, df, artifact, report)
    return report


def run(spark: SparkSession, cfg: JobConfig) -> RunReport:
    cfg.require("input.path", "output.path", "model_dir")
    report = RunReport(new_run_id())
    with _guarded(spark, cfg, report, ["input.path", "output.path", "model_dir"], ["output.path", "model_dir"]):
        check_output_target(spark, cfg.output)
        df = read_table(spark, cfg.input)
        resolve_roles(cfg, df.schema)
        output_columns(cfg, df, list(cfg.columns.id))
        _count(df, report)
        artifact = _existing_model_for_empty(cfg, df, report) or _train_on(cfg, df, report.input_rows, report)
        _score_with(spark, cfg, df, artifact, report)
    return report


def _existing_model_for_empty(cfg: JobConfig, df: DataFrame, report: RunReport) -> Artifact | None:
    """A night without rows is not an error when a model exists: keep it, and write an empty output."""
    assert cfg.model_dir
    if report.input_rows or not (Path(cfg.model_dir) / MANIFEST).is_file():
        return None
    log.warning("input %s is empty: nothing to train on; scoring it with the model in %s", cfg.input.path,
                cfg.model_dir)
    artifact = load_artifact(cfg.model_dir)
    check_against_artifact(artifact.input_schema, df.schema, cfg.model_dir)
    return artifact
