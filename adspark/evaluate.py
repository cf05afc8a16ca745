"""How good is the model on labelled rows: metrics computed in Spark, a page rendered from them.

`evaluate` scores a labelled table with a saved model (or reads a scored output) and
computes, without collecting the table:
- ROC-AUC, exact and rank-based with ties averaged (the Mann-Whitney statistic):
  per distinct score s, pos(s) * (negatives below s + neg(s) / 2), summed, over P * N;
- PR-AUC as average precision (scikit-learn's definition): per distinct score s,
  pos(s) / P times the precision of flagging every row scoring >= s;
- precision@k for k = 100, 1000 and the flagged count (rows tied at the k-th score
  count in proportion, the expectation under a random tie-break);
- precision, recall and flagged rate at the model's threshold;
- the same per value of `--by`.
The rows are grouped by (segment, score); a window over each segment's distinct scores,
in score order, gives the counts below each score. A segment's distinct scores are
ordered by one task (Spark's external sort, so memory stays bounded).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from adspark import drift
from adspark.config import JobConfig
from adspark.errors import ConfigError, PathError, SchemaError
from adspark.schema import FLAG_COL, SCORE_COL, column

log = logging.getLogger("adspark.evaluate")
K_VALUES = (100, 1000)
CURVE_POINTS = 400
TOP_ROWS = 20
MAX_SEGMENTS = 100
ALL = "__all__"
LABEL_TYPES = (T.BooleanType, T.ByteType, T.ShortType, T.IntegerType, T.LongType, T.DecimalType, T.FloatType,
               T.DoubleType)


@dataclass
class Evaluation:
    metrics: dict[str, Any]
    manifest: dict[str, Any] | None


def check_label(df: DataFrame, label: str) -> None:
    """The label must exist, be numeric or boolean, and hold only 0 and 1 (both), no nulls."""
    fields = {f.name: f.dataType for f in df.schema.fields}
    if label not in fields:
        raise SchemaError(f"label column {label!r} is not in the table; available columns: {', '.join(sorted(fields))}")
    if not isinstance(fields[label], LABEL_TYPES):
        raise SchemaError(f"label column {label!r} has type {fields[label].simpleString()}; it must be boolean or "
                          "numeric with values 0 and 1")
    y = column(label).cast("double")
    row = df.agg(
        F.sum(column(label).isNull().cast("long")).alias("nulls"),
        F.sum((~y.isin(0.0, 1.0)).cast("long")).alias("other"),
        F.sum((y == 1.0).cast("long")).alias("pos"),
        F.sum((y == 0.0).cast("long")).alias("neg"),
    ).first()
    assert row is not None
    if row["nulls"]:
        raise SchemaError(f"label column {label!r} has {row['nulls']} null value(s); every row needs a 0/1 label")
    if row["other"]:
        sample = [r[0] for r in df.where(~y.isin(0.0, 1.0)).select(column(label)).distinct().limit(3).collect()]
        raise SchemaError(f"label column {label!r} is not binary: {row['other']} row(s) hold values other than 0 and "
                          f"1 (e.g. {', '.join(map(str, sample))})")
    if not row["pos"] or not row["neg"]:
        which = "positive (1)" if not row["pos"] else "negative (0)"
        raise SchemaError(f"label column {label!r} has no {which} rows; ROC-AUC needs both classes")


def _terms(g: DataFrame) -> dict[str, Column]:
    """Per distinct (segment, score): the counts at and above it, and each metric's term."""
    pos, n = F.col("pos"), F.col("n")
    ge, tp_ge = F.col("rows") - F.col("n_below"), F.col("P") - F.col("pos_below")
    neg_below = F.col("n_below") - F.col("pos_below")
    return {
        "auc": pos * (neg_below + (n - pos) / 2.0),
        "ap": pos * tp_ge / ge,
        "ge": ge,
        "tp_ge": tp_ge,
        "neg_ge": (F.col("rows") - F.col("P")) - neg_below,
        "tp_gt": tp_ge - pos,
        "gt": ge - n,
    }


def _precision_at(k: Column, t: dict[str, Column]) -> Column:
    """The term of precision@k: nonzero only on the distinct score where the top k ends."""
    inside = (t["ge"] >= k) & (t["gt"] < k) & (k > 0)
    value = (t["tp_gt"] + F.col("pos") * (k - t["gt"]) / F.col("n")) / k
    return F.sum(F.when(inside, value))


def metrics_from(scored: DataFrame, label: str, threshold: float, by: str | None) -> dict[str, Any]:
    """Every metric of the module docstring, overall and (with `by`) per segment; one dict."""
    seg = column(by).cast("string") if by else F.lit(ALL)
    base = scored.select(F.col(SCORE_COL).alias("s"), column(label).cast("double").cast("int").alias("y"),
                         F.coalesce(seg, F.lit("<null>")).alias("seg"))
    if by:
        base = base.unionByName(base.withColumn("seg", F.lit(ALL)))  # every segment, and the whole table
    totals = base.groupBy("seg").agg(
        F.count(F.lit(1)).alias("rows"), F.sum("y").alias("P"),
        F.sum((F.col("s") > F.lit(threshold)).cast("long")).alias("flagged"),
        F.sum(F.when(F.col("s") > F.lit(threshold), F.col("y")).otherwise(0)).alias("tp"),
        F.approx_count_distinct("s").alias("distinct"),
    )
    found = {r["seg"]: r.asDict() for r in totals.collect()}
    if len(found) > MAX_SEGMENTS + 1:
        raise ConfigError(f"--by {by}: {len(found) - 1} distinct values; at most {MAX_SEGMENTS} segments are reported")
    w = Window.partitionBy("seg").orderBy("s").rowsBetween(Window.unboundedPreceding, -1)
    g = base.groupBy("seg", "s").agg(F.sum("y").alias("pos"), F.count(F.lit(1)).alias("n"))
    g = (g.withColumn("pos_below", F.coalesce(F.sum("pos").over(w), F.lit(0)))
         .withColumn("n_below", F.coalesce(F.sum("n").over(w), F.lit(0)))
         .join(F.broadcast(totals.select("seg", "rows", "P", "flagged")), "seg"))
    g = g.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        t = _terms(g)
        ks = {str(k): F.lit(k) for k in K_VALUES}
        aggs = [F.sum(t["auc"]).alias("auc"), F.sum(t["ap"]).alias("ap")]
        aggs += [_precision_at(k, t).alias(f"p@{name}") for name, k in ks.items()]
        aggs.append(_precision_at(F.col("flagged"), t).alias("p@flagged"))
        per_seg = {r["seg"]: r.asDict() for r in g.groupBy("seg").agg(*aggs).collect()}
        curves = _curves(g, t, found[ALL]["distinct"])
    finally:
        g.unpersist()
    result = {seg_name: _segment(found[seg_name], per_seg[seg_name]) for seg_name in found}
    overall = result.pop(ALL)
    overall["curves"] = curves
    if by:
        overall["segments"] = {by: dict(sorted(result.items()))}
    return overall


def _segment(tot: dict[str, Any], agg: dict[str, Any]) -> dict[str, Any]:
    rows, pos, flagged, tp = int(tot["rows"]), int(tot["P"] or 0), int(tot["flagged"]), int(tot["tp"] or 0)
    neg = rows - pos
    pk = {k: _num(agg[f"p@{k}"]) for k in (*map(str, K_VALUES), "flagged")}
    pk[str(flagged)] = pk.pop("flagged") if flagged else None
    return {
        "rows": rows,
        "positives": pos,
        "roc_auc": _num(agg["auc"] / (pos * neg)) if pos and neg else None,
        "pr_auc": _num(agg["ap"] / pos) if pos else None,
        "precision_at_k": {k: v for k, v in pk.items() if v is not None},
        "flagged": flagged,
        "at_threshold": {
            "precision": tp / flagged if flagged else None,
            "recall": tp / pos if pos else None,
            "flagged_rate": flagged / rows if rows else 0.0,
        },
    }


def _num(value: Any) -> float | None:
    return float(value) if value is not None and math.isfinite(float(value)) else None


def _curves(g: DataFrame, t: dict[str, Column], distinct: int) -> dict[str, Any]:
    """ROC and PR points at about CURVE_POINTS distinct scores (a seeded hash picks them)."""
    every = max(1, int(distinct) // CURVE_POINTS)
    spread = (F.abs(F.xxhash64("s")) % F.lit(every)) == 0
    pick = (F.col("seg") == F.lit(ALL)) & (spread | (t["ge"] <= F.lit(CURVE_POINTS)))  # and the very top
    rows = (g.where(pick).select("s", (t["tp_ge"] / F.col("P")).alias("tpr"),
                                 (t["neg_ge"] / (F.col("rows") - F.col("P"))).alias("fpr"),
                                 (t["tp_ge"] / t["ge"]).alias("precision")).collect())
    pts = sorted((r["s"], r["fpr"], r["tpr"], r["precision"]) for r in rows)[::-1]  # highest score first
    fpr = [0.0] + [p[1] for p in pts] + [1.0]
    tpr = [0.0] + [p[2] for p in pts] + [1.0]
    recall = [p[2] for p in pts]
    precision = [p[3] for p in pts]
    return {"roc": {"fpr": fpr, "tpr": tpr}, "pr": {"recall": recall, "precision": precision}}


def histogram_by_label(scored: DataFrame, label: str, threshold: float) -> dict[str, Any]:
    """Shares of each label's rows per asinh-spaced score bin (for the page's log-scale plot)."""
    s = F.col(SCORE_COL)
    row = scored.agg(F.min(s).alias("lo"), F.max(s).alias("hi"),
                     F.percentile_approx(F.abs(s), 0.5, 1000).alias("w")).first()
    assert row is not None
    edges = drift.edges_between(float(row["lo"]), float(row["hi"]), float(row["w"] or 1.0), threshold)
    y = column(label).cast("double").cast("int")
    counts = scored.groupBy(y.alias("y")).agg(
        F.count(F.lit(1)).alias("n"), *[F.sum((s <= F.lit(e)).cast("long")).alias(f"c{i}") for i, e in
                                        enumerate(edges)]).collect()
    by_label: dict[str, list[float]] = {}
    for r in sorted(counts, key=lambda r: r["y"]):
        cum = [int(r[f"c{i}"]) for i in range(len(edges))] + [int(r["n"])]
        bins = [b - a for a, b in zip([0, *cum[:-1]], cum, strict=True)]
        by_label[str(r["y"])] = [b / r["n"] for b in bins]
    return {"edges": edges, "by_label": by_label}


def top_rows(scored: DataFrame, keep: list[str]) -> dict[str, Any]:
    from adspark.monitor import _jsonable

    rows = scored.select(*[column(c) for c in keep]).orderBy(F.col(SCORE_COL).desc()).limit(TOP_ROWS).collect()
    return {"columns": keep, "rows": [[_jsonable(v) for v in r] for r in rows]}


def _scored_table(spark: SparkSession, cfg: JobConfig, scores: str | None, label: str, by: str | None
                  ) -> tuple[DataFrame, float, dict[str, Any] | None, str]:
    """The scored rows, the threshold, the model manifest (when there is a model) and the source's name."""
    from adspark.artifact import load_artifact
    from adspark.io import read_table

    artifact = load_artifact(str(cfg.model_dir)) if cfg.model_dir else None
    if scores:
        df = spark.read.parquet(scores)
        if SCORE_COL not in df.columns:
            raise SchemaError(f"{scores}: no {SCORE_COL!r} column; is it an adspark output?")
        threshold = _model_threshold(cfg, artifact) if artifact else _run_threshold(spark, scores)
        _check_columns(df, label, by)
        return df, threshold, artifact.manifest if artifact else None, scores
    if artifact is None:
        raise ConfigError("evaluate: set model_dir (or --model-dir) to score the table, or pass --scores")
    from adspark.pipeline import scored_for_evaluation

    df = read_table(spark, cfg.input)
    _check_columns(df, label, by)
    scored = scored_for_evaluation(spark, cfg, df, artifact)
    return scored, _model_threshold(cfg, artifact), artifact.manifest, str(cfg.input.path)


def _model_threshold(cfg: JobConfig, artifact: Any) -> float:
    from adspark.pipeline import decision_for

    threshold = decision_for(cfg, artifact).threshold
    if threshold is None:
        raise ConfigError("evaluate: the model's decision (top_k per segment) has no single score threshold; set "
                          "a threshold block (e.g. method: fixed) in the config")
    return float(threshold)


def _check_columns(df: DataFrame, label: str, by: str | None) -> None:
    check_label(df, label)
    if by and by not in df.columns:
        raise SchemaError(f"--by column {by!r} is not in the table; available columns: {', '.join(sorted(df.columns))}")


def _run_threshold(spark: SparkSession, scores: str) -> float:
    """The threshold the scored output was flagged with, from its run manifest(s), on any filesystem.

    `scores` may be a pattern over several outputs (`out/dt=*`): their runs must agree."""
    from adspark.io import HadoopPath
    from adspark.publish import RUN_MANIFEST

    thresholds: dict[float, str] = {}  # each threshold found, with the first run manifest that has it
    for manifest in HadoopPath(spark, scores).matches(RUN_MANIFEST):
        try:
            value = json.loads(manifest.read_text())["threshold"]
            if value is not None:
                thresholds.setdefault(float(value), manifest.path)
        except (ValueError, KeyError, TypeError):
            raise ConfigError(f"{manifest.path}: no threshold in this run manifest; pass --model-dir") from None
        if value is None:
            raise ConfigError(f"{manifest.path}: this run flagged rows by top_k, with no single score threshold; "
                              "pass --model-dir to evaluate at the model's threshold")
    if not thresholds:
        raise ConfigError(f"{scores}: no model_dir given and no {RUN_MANIFEST} to take the threshold from; "
                          "pass --model-dir")
    if len(thresholds) > 1:
        (low, a), (high, b) = min(thresholds.items()), max(thresholds.items())
        raise ConfigError(f"{scores}: the outputs were flagged at different thresholds ({a}: {low:g}, {b}: "
                          f"{high:g}); pass --model-dir to evaluate at one threshold")
    return next(iter(thresholds))


def evaluate(spark: SparkSession, cfg: JobConfig, label: str, scores: str | None = None, by: str | None = None
             ) -> Evaluation:
    scored, threshold, manifest, source = _scored_table(spark, cfg, scores, label, by)
    names = {cfg.output.score_column: SCORE_COL, cfg.output.flag_column: FLAG_COL, cfg.output.reasons_column:
             "top_features"}
    if cfg.output.score_column not in scored.columns:
        raise SchemaError(f"no {cfg.output.score_column!r} column in the scored table (output.score_column)")
    scored = scored.select(*[column(c).alias(names.get(c, c)) for c in scored.columns
                             if c in names or c not in names.values()])
    ids = [c for c in cfg.columns.id if c in scored.columns]
    extra = [c for c in ("top_features",) if c in scored.columns]
    features = [c for c in scored.columns if c not in {*ids, *extra, label, SCORE_COL, FLAG_COL, by}]
    keep = [*ids, label, SCORE_COL, *extra, *([by] if by and by not in ids else []), *features][:12]
    cached = scored.select(*[column(c) for c in dict.fromkeys([*keep, label, *([by] if by else [])])])
    cached = cached.persist(StorageLevel.MEMORY_AND_DISK)  # scored once, read by every metric below
    try:
        metrics = metrics_from(cached, label, threshold, by)
        metrics["histogram"] = histogram_by_label(cached, label, threshold)
        metrics["top_rows"] = top_rows(cached, keep)
    finally:
        cached.unpersist()
    metrics = {"input": source, "label": label, "threshold": threshold, **metrics}
    return Evaluation(metrics, manifest)


REPORT_FILES = ("metrics.json", "index.html")


def check_report_dir(directory: str) -> None:
    """Refuse, before any work, a report directory whose metrics.json or index.html another tool wrote:
    adspark replaces those two files and nothing else."""
    out = Path(directory)
    if out.exists() and not out.is_dir():
        raise PathError(f"--report {directory!r} is a file; give a directory")
    present = [name for name in REPORT_FILES if (out / name).exists()]
    if not present:
        return
    try:
        ours = {"roc_auc", "label"} <= set(json.loads((out / "metrics.json").read_text()))
    except (OSError, ValueError, TypeError):
        ours = False
    if not ours:
        raise PathError(f"--report {directory!r} holds {' and '.join(present)} that adspark evaluate did not "
                        "write; refusing to replace them (choose another directory)")


def write_report(evaluation: Evaluation, directory: str) -> Path:
    """DIR/metrics.json and DIR/index.html."""
    from adspark.report import evaluation_page

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(evaluation.metrics, indent=2))
    (out / "index.html").write_text(evaluation_page(evaluation.metrics, evaluation.manifest))
    return out
