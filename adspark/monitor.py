"""The Spark side of watching a scoring run: feature drift, score counts, top rows, the run report.

`Monitor.check_input` runs before the scoring pass and sets up `counting`: the
scoring UDF counts the features it already holds at the reference's edges
(adspark/drift.py) and the counts come back in an accumulator, so drift costs no
second scan of the input and covers every row. The sequence scorer, whose
parallel blocks also read some events as context rows, counts only the rows it
scores for the output.
`Monitor.finish` runs inside `publish`, on the verified staging directory and before
the swap: it compares the counted features, counts the written scores at the
reference's edges (one pass over the score column), lists the flagged rows by their first
reason (counted in the scoring pass too, for a run with a score threshold), fetches the top-scored rows (the
score column first, then only the row groups holding the top scores), adds it all to
the run manifest and writes `_adspark_report.html` into the staging directory, so the
report is published with the output or not at all. With `monitor.on_drift: fail`,
drift raises DriftError in `finish`, so nothing is published.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

import numpy as np
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from adspark import drift
from adspark.artifact import Artifact
from adspark.config import JobConfig
from adspark.errors import DriftError
from adspark.io import HadoopPath
from adspark.publish import RUN_REPORT
from adspark.runtime import Counting
from adspark.schema import column
from adspark.scoring import model_feature_names

log = logging.getLogger("adspark.monitor")
TOP_ROWS = 20
TOP_CANDIDATES = 100_000  # at most this many rows above the cut are ordered to find the top ones
FLAG_REASONS = 20  # first reasons listed in the run manifest; the rest are counted as `other`
TOP_COLUMNS = 12  # columns of a top row kept in the manifest (ids, reasons, score, then features)


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if hasattr(value, "asDict"):  # a struct (e.g. one reason: column and contribution)
        return {k: _jsonable(v) for k, v in value.asDict().items()}
    if isinstance(value, float):
        return value if np.isfinite(value) else str(value)
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return str(value)


@contextmanager
def _plan_fields(spark: SparkSession, fields: int) -> Iterator[None]:
    """Room for `fields` expressions in a plan's text, so Spark does not warn that it truncated it."""
    key = "spark.sql.debug.maxToStringFields"
    before = spark.conf.get(key)
    spark.conf.set(key, str(max(fields + 10, int(str(before)))))
    try:
        yield
    finally:
        spark.conf.set(key, str(before))


class Monitor:
    def __init__(self, spark: SparkSession, cfg: JobConfig, artifact: Artifact, ids: list[str]) -> None:
        self.spark, self.cfg, self.artifact, self.ids = spark, cfg, artifact, ids
        out = cfg.output
        self.score_col, self.flag_col, self.reasons_col = out.score_column, out.flag_column, out.reasons_column
        self.reference: dict[str, Any] | None = artifact.manifest.get("reference")
        self.features: dict[str, dict[str, Any]] = {}
        self.timings: dict[str, float] = {}
        self.counting: Counting | None = None  # (drift.Tally, accumulator) for the scoring pass
        self.sample_rows = 0
        self.flag_counts: dict[str, int] | None = None  # flagged rows by first reason, from the scoring pass
        self._cut: float | None = None  # a score below the top rows, from the score counts

    @property
    def active(self) -> bool:
        return self.reference is not None and self.cfg.monitor.drift

    def check_input(self, threshold: float | None = None) -> None:
        """Set up drift counting for the scoring pass (every kind: the sequence scorer skips context rows).

        With the run's score `threshold` and a reasons column in the output, the pass also counts the flagged
        rows by their first reason (`flag_reasons` in the run manifest)."""
        if self.reference is None:
            log.info("the model in %s has no drift reference (trained by an older adspark); drift skipped",
                     self.artifact.path)
            return
        if not self.cfg.monitor.drift:
            return
        sink: Any = self.spark.sparkContext.accumulator({}, cast(Any, drift.PartitionCounts()))
        by_reason = threshold if self.cfg.output.explain else None
        self.counting = (drift.Tally(self.reference, model_feature_names(self.artifact), by_reason), sink)

    def _counted_features(self) -> None:
        """The features counted in the scoring pass, compared with the reference."""
        if self.counting is None:
            return
        tally, sink = self.counting
        parts = list(sink.value.values())
        total = np.sum(parts, axis=0) if parts else tally.zero()
        rows = tally.rows(total)
        self.sample_rows = rows
        self.flag_counts = tally.flag_reasons(total)
        if rows:
            self.features = tally.compare(total)
            self._judge()

    def _judge(self) -> None:
        """One warning naming the drifted columns, or DriftError under `monitor.on_drift: fail`."""
        m = self.cfg.monitor
        over = drift.drifted(self.features, m.max_psi)
        if over:
            named = ", ".join(f"{c!r} (PSI {self.features[c]['psi']:.3g})" for c in over)
            message = f"data drift: PSI above monitor.max_psi {m.max_psi:g} in column(s) {named}"
            if m.on_drift == "fail":
                raise DriftError(f"{message}; monitor.on_drift is 'fail', so nothing was published")
            log.warning("%s", message)

    def _flag_reasons(self, flagged: int) -> dict[str, Any] | None:
        """The scoring pass's flagged rows by first reason, when they account for every written flag."""
        counts = self.flag_counts
        if not flagged or counts is None:
            return None
        if sum(counts.values()) != flagged:  # not expected: the pass tests `score > threshold` like the flag
            log.info("flag reasons counted %d rows against %d flagged; not reported", sum(counts.values()), flagged)
            return None
        ranked = list(counts.items())
        out: dict[str, Any] = {"column": self.reasons_col,
                               "features": [{"feature": f, "flagged": c} for f, c in ranked[:FLAG_REASONS]],
                               "other": sum(c for _, c in ranked[FLAG_REASONS:])}
        trained = (self.reference or {}).get("flag_reasons")
        if trained:  # the training sample's flags by first reason: the mix tonight's is compared with
            total = sum(trained.values())
            for entry in out["features"]:
                entry["training_share"] = trained.get(entry["feature"], 0) / total
            out["training_flagged"] = total
        return out

    def _score_counts(self, out: DataFrame) -> list[int]:
        assert self.reference is not None
        score = F.col(self.score_col)
        exprs = [F.sum((score <= F.lit(e)).cast("long")).alias(f"c{i}")
                 for i, e in enumerate(drift.score_edges(self.reference))]
        exprs.append(F.count(F.lit(1)).alias("n"))
        with _plan_fields(self.spark, len(exprs)):
            row = out.agg(*exprs).first()
        cumulative = [int(row[f"c{i}"] or 0) for i in range(len(exprs) - 1)] if row else []
        total = int(row["n"]) if row else 0
        # The highest edge with at least TOP_ROWS scores above it (and not too many): the top
        # rows are then read in one job, which Parquet's row-group statistics mostly skip.
        above = [(e, total - c) for e, c in zip(drift.score_edges(self.reference), cumulative, strict=True)]
        fits = [e for e, n in above if TOP_ROWS <= n <= TOP_CANDIDATES]
        self._cut = max(fits) if fits else None
        return cumulative

    def _top_rows(self, out: DataFrame) -> dict[str, Any]:
        names = out.columns
        keep = [c for c in self.ids if c in names]
        keep += [c for c in (self.score_col, self.flag_col, self.reasons_col) if c in names]
        features = [c["name"] for c in self.artifact.input_schema if c["name"] in names and c["name"] not in keep]
        keep += features[: max(0, TOP_COLUMNS - len(keep))]
        cut = self._cut
        if cut is None:  # no counts at known edges: find the 20th score first (one column read)
            top = out.select(column(self.score_col)).orderBy(F.col(self.score_col).desc()).limit(TOP_ROWS).collect()
            if not top:
                return {"columns": keep, "rows": []}
            cut = float(top[-1][0])
        rows = (out.where(F.col(self.score_col) >= F.lit(cut)).select(*[column(c) for c in keep])
                .orderBy(F.col(self.score_col).desc()).limit(TOP_ROWS).collect())
        return {"columns": keep, "rows": [[_jsonable(v) for v in r] for r in rows]}

    def finish(self, staging: HadoopPath, manifest: dict[str, Any]) -> dict[str, Any]:
        """Score drift, top rows and the report, on the verified staging directory (before the swap)."""
        start = time.perf_counter()
        out = self.spark.read.parquet(staging.path)
        rows, flagged = int(manifest["output_rows"]), int(manifest["flagged"])
        if self.active:
            assert self.reference is not None
            self._counted_features()
            scores = drift.score_drift(self.reference, self._score_counts(out) if rows else [], rows, flagged)
            manifest["drift"] = {
                "max_psi": self.cfg.monitor.max_psi,
                "sample_rows": self.sample_rows,
                "counted_in_scoring": self.counting is not None,
                "features": self.features,
                "drifted": drift.drifted(self.features, self.cfg.monitor.max_psi),
                **scores,
            }
            reasons = self._flag_reasons(flagged)
            if reasons:
                manifest["flag_reasons"] = reasons
        manifest["top_rows"] = self._top_rows(out) if rows else {"columns": [], "rows": []}
        self.timings["monitor_s"] = round(time.perf_counter() - start, 3)
        manifest["timings"] = {**manifest.get("timings", {}), **self.timings}
        if self.cfg.monitor.report:
            staging.child(RUN_REPORT).write_text(render_run(manifest))
        return manifest


def render_run(manifest: dict[str, Any]) -> str:
    """The run page from the run manifest alone (as `adspark report` re-renders it)."""
    from adspark.report import run_page

    return run_page(json.loads(json.dumps(manifest)))
