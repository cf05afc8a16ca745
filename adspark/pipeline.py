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
from adspark.artifact import MANIFEST, MODEL_REPORT, Artifact, load_artifact, save_artifact, unsaved_artifact
from adspark.artifact import build_manifest as _build_manifest
from adspark.config import JobConfig
from adspark.decisions import Decision, ScoreSummary, decide
from adspark.drift import build_reference
from adspark.errors import ConfigError, SchemaError, TrainingError
from adspark.guard import guarded
from adspark.io import check_output_target, layout_columns, read_table
from adspark.models import make_detector
from adspark.monitor import Monitor
from adspark.progress import progress
from adspark.publish import new_run_id, observe_input, publish
from adspark.runtime import Counting
from adspark.sampling import empty_feature_warnings, training_sample
from adspark.schema import (
    OutputNames,
    Roles,
    check_against_artifact,
    check_no_missing,
    check_output_names,
    check_segments,
    column,
    describe_roles,
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


def fit_artifact(cfg: JobConfig, df: DataFrame, rows: int, report: RunReport | None = None) -> Artifact:
    """The one training path (CLI and library): checks, seeded sample of `rows`, fit; returned unsaved."""
    report = report or RunReport(new_run_id())
    layout = layout_columns(df)
    roles: Roles = resolve_roles(cfg, df.schema, layout)
    for line in describe_roles(cfg, df.schema, roles, layout):
        log.info(line)
    if rows == 0:
        where = f"input table {cfg.input.path!r}" if cfg.input.path else "the DataFrame"
        raise SchemaError(f"{where} is empty: there is nothing to train on")
    if cfg.preprocess.on_missing == "fail":
        check_no_missing(df, roles.numeric)
    with _Timer(report, "sample_s"), progress(df.sparkSession, "sampling", rows):
        sample = _sample(cfg, df, roles, rows)
    for line in empty_feature_warnings(sample, roles.numeric, roles.categorical):
        log.warning(line)
    log.info("training %s on %d sampled rows, %d features", cfg.model.kind, sample.num_rows, len(roles.features))
    with _Timer(report, "train_s"):
        detector = make_detector(cfg, roles.numeric, roles.categorical).fit(sample)
    core = {**detector.manifest_(), "reference": _reference(detector, sample, roles)}
    schema = input_schema_record(roles, df.schema)
    files = {**detector.files_, MODEL_REPORT: _model_report(_build_manifest(core, detector.files_, schema), cfg)}
    return unsaved_artifact(_build_manifest(core, files, schema), files)


def _reference(detector: Any, sample: pa.Table, roles: Roles) -> dict[str, Any]:
    """The training sample's distributions, frozen for drift checks at scoring (adspark/drift.py)."""
    scores = getattr(detector, "train_scores_", None)
    if scores is None:
        scores = detector.decision_function(sample)
    return build_reference(sample, roles.numeric, roles.categorical, scores, detector.threshold_,
                           detector.first_reasons(sample, scores))


def _model_report(manifest: dict[str, Any], cfg: JobConfig) -> bytes:
    """The model's own page, saved in the artifact (and pinned by its sha256 like every file)."""
    from adspark.report import model_page

    return model_page(manifest, str(cfg.model_dir or "")).encode()


def _train_on(cfg: JobConfig, df: DataFrame, rows: int, report: RunReport) -> Artifact:
    assert cfg.model_dir
    trained = fit_artifact(cfg, df, rows, report)
    artifact = save_artifact(cfg.model_dir, trained.manifest, trained.files)
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
        resolve_roles(cfg, df.schema, layout_columns(df))  # fail on a bad schema before counting rows
        _count(df, report)
        _train_on(cfg, df, report.input_rows, report)
    return report


def _scored(spark: SparkSession, df: DataFrame, artifact: Artifact, cols: list[str], ids: list[str],
            block_events: int, names: OutputNames, decision: Decision, counting: Counting | None = None) -> DataFrame:
    """The output columns plus the scores; sequence models score each event in its stream's order.

    `counting` counts the features for drift in the scoring pass."""
    if artifact.kind == "lstm":
        scored = score_sequences(spark, df, artifact, ids, block_events, outputs=names, decision=decision,
                                 counting=counting)
        return scored.select(*[column(c) for c in cols], *[column(c) for c in names.added])
    return score_dataframe(spark, df, artifact, keep=cols, names=names, decision=decision, ids=ids,
                           counting=counting)


def decision_for(cfg: JobConfig, artifact: Artifact) -> Decision:
    """The config's threshold block when it has one, fitted on the artifact's frozen training scores; else the
    artifact's own decision."""
    recorded = artifact.manifest["threshold"]
    t = cfg.threshold
    if "threshold" not in cfg.model_fields_set:
        by = tuple(recorded.get("by", ()))
        thr = recorded.get("threshold")
        return Decision(recorded["method"], float(recorded["value"]), float(recorded.get("level", t.level)), by,
                        None if thr is None else float(thr), {"source": "artifact"})
    if t.method == "fixed":
        return Decision("fixed", t.value, threshold=t.value, details={"source": "config"})
    if "score_summary" not in artifact.manifest:
        raise ConfigError(f"threshold.method {t.method!r} needs the training-score summary, which the model in "
                          f"{artifact.path} lacks (trained by an older adspark): retrain it, or use method 'fixed'")
    try:
        decision = decide(t.method, t.value, ScoreSummary.from_state(artifact.manifest["score_summary"]), t.level,
                          t.by)
    except TrainingError as err:
        raise ConfigError(f"threshold: {err}") from None
    decision.details["source"] = "config"
    return decision


def output_names(cfg: JobConfig, artifact: Artifact) -> OutputNames:
    """The user's output column names; no percentile from a model without a training-score summary."""
    names = OutputNames.from_config(cfg.output)
    if names.percentile and "score_summary" not in artifact.manifest:
        log.warning("the model in %s has no training-score summary (older adspark): no %s column; retrain to "
                    "get it", artifact.path, names.percentile)
        names = OutputNames(names.score, names.flag, None, names.reasons, names.explain)
    return names


def check_scorable(cfg: JobConfig, df: DataFrame, artifact: Artifact) -> None:
    """Before any scoring work: the table has the model's columns, and the config's output columns."""
    where = artifact.path or "memory"
    check_against_artifact(artifact.input_schema, df.schema, where)
    if artifact.manifest["preprocessing"]["on_missing"] == "fail":
        check_no_missing(df, [c["name"] for c in artifact.input_schema if c["role"] == "numeric"])
    check_segments(cfg, df)
    check_output_names(cfg.output, output_columns(cfg, df, list(cfg.columns.id)))
    decision_for(cfg, artifact)  # a threshold block the model cannot serve fails before any work


def scored_frame(spark: SparkSession, cfg: JobConfig, df: DataFrame, artifact: Artifact,
                 decision: Decision | None = None, counting: Counting | None = None) -> DataFrame:
    """The one scoring path (CLI and library): the config's output columns of `df` plus the scores; lazy
    (but a top_k decision finds its cuts with a Spark job)."""
    ids = list(cfg.columns.id)
    decision = decision or decision_for(cfg, artifact)
    return _scored(spark, df, artifact, output_columns(cfg, df, ids), ids, cfg.model.block_events,
                   output_names(cfg, artifact), decision, counting)


def _score_with(spark: SparkSession, cfg: JobConfig, df: DataFrame, artifact: Artifact, report: RunReport) -> None:
    assert cfg.output.path
    ids = list(cfg.columns.id)
    decision = decision_for(cfg, artifact)
    monitor = Monitor(spark, cfg, artifact, ids)
    monitor.check_input(decision.threshold)  # drift (and flag-reason) counting set up for the scoring pass
    observed, source = observe_input(df, ids)
    scored = scored_frame(spark, cfg, observed, artifact, decision, monitor.counting)
    run_info = {
        "run_id": report.run_id,
        "adspark_version": __version__,
        "config_sha256": cfg.digest(),
        "model_sha256": artifact.digest,
        "model_dir": artifact.path,
        "model_kind": artifact.kind,
        "threshold": decision.threshold,
        "decision": decision.record(),
        "input_path": cfg.input.path,
        "output_path": cfg.output.path,
        "timings": report.timings,
    }
    try:
        with _Timer(report, "score_write_s"), progress(spark, "scoring", report.input_rows or None):
            stats, manifest = publish(spark, scored, cfg.output, ids, source, run_info, finish=monitor.finish)
    finally:
        decision.release()
    report.input_rows, report.output_rows = int(manifest["input_rows"]), stats.rows
    report.flagged, report.manifest = stats.flagged, manifest
    report.threshold = float("nan") if decision.threshold is None else decision.threshold
    report.output_path = cfg.output.path


def scored_for_evaluation(spark: SparkSession, cfg: JobConfig, df: DataFrame, artifact: Artifact) -> DataFrame:
    """Every column of `df` plus the scores, not written anywhere (adspark/evaluate.py)."""
    check_against_artifact(artifact.input_schema, df.schema, str(cfg.model_dir))
    return _scored(spark, df, artifact, list(df.columns), list(cfg.columns.id), cfg.model.block_events,
                   output_names(cfg, artifact), decision_for(cfg, artifact))


def score(spark: SparkSession, cfg: JobConfig, artifact: Artifact | None = None) -> RunReport:
    """Score with a saved artifact; pass `artifact` when the caller already verified it."""
    cfg.require("input.path", "output.path", "model_dir")
    assert cfg.model_dir
    report = RunReport(new_run_id(), model_dir=cfg.model_dir)
    artifact = artifact or load_artifact(cfg.model_dir)  # integrity first: before any data is read
    with _guarded(spark, cfg, report, ["input.path", "output.path", "model_dir"], ["output.path"]):
        check_output_target(spark, cfg.output)
        df = read_table(spark, cfg.input)
        check_scorable(cfg, df, artifact)
        _score_with(spark, cfg, df, artifact, report)
    return report


def run(spark: SparkSession, cfg: JobConfig) -> RunReport:
    cfg.require("input.path", "output.path", "model_dir")
    report = RunReport(new_run_id())
    with _guarded(spark, cfg, report, ["input.path", "output.path", "model_dir"], ["output.path", "model_dir"]):
        check_output_target(spark, cfg.output)
        df = read_table(spark, cfg.input)
        resolve_roles(cfg, df.schema, layout_columns(df))
        check_output_names(cfg.output, output_columns(cfg, df, list(cfg.columns.id)))
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
