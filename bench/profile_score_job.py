"""Where the time of `adspark score` goes inside Spark, with the JVM already warm (or cold).

    python bench/profile_score_job.py --workdir /tmp/adspark-bench [--rows 2000000] [--repeats 2]
                                      [--cases copy,identity,identity_ids,adspark,adspark_ids] [--cold]
                                      [--experiments] [--conf k=v ...]

Uses the table, model and configs prepared by bench/score_vs_copy.py. In ONE
SparkSession built with the same settings (so JVM start-up and JIT warm-up are
out of the picture), after a warm-up copy and a warm-up Arrow UDF (skipped with
--cold, to see a fresh process's costs), it runs `repeats` times each of:

- copy:              read.parquet -> write.parquet
- identity:          Arrow UDF returning its input's first field, all columns written
- identity_ids:      the same, only txn_id + the UDF's output written
- adspark:           adspark.pipeline.score (all columns), every phase timed
- adspark_ids:       adspark.pipeline.score with output.columns [txn_id]

and with --experiments, what-if cases: identity with 100k-row Arrow batches, with 30
separate arguments instead of a struct, with float32 features, and as
DataFrame.mapInArrow (all columns / ids only); adspark's UDF + write alone (no
fingerprint, no read-back check), with 100k-row batches, with the read-back
check's numbers gathered by DataFrame.observe during the write, and scores-only
(ids + score + flag) as adspark's scalar UDF vs as mapInArrow around adspark's scorer.

For the adspark runs, adspark's own functions are wrapped from the outside (no
adspark code is changed): load_artifact, read_table, the input count or fingerprint, the Parquet
write, output_stats (the read-back check), the manifest + rename swap; and the
scoring UDF body is replaced by an instrumented copy of
adspark.runtime.batch_scorer that adds, per worker, the seconds spent waiting for
the next Arrow batch from the JVM, in preprocessing, onnxruntime, the error maths
and in handing the result back, into Spark accumulators. Stage metrics
(executor run time, CPU, GC) come from the Spark UI's REST API.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import shutil
import statistics
import time
import urllib.request
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
from _spark import build_session, parse_conf
from pyspark.accumulators import Accumulator
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.functions import ArrowUDFType

import adspark.pipeline
import adspark.scoring
from adspark.config import JobConfig, apply_overrides, load_config

UDF_PHASES = ("scorer_init", "input_wait", "flatten", "preprocess", "network_input", "onnx_run", "error",
              "to_arrow", "output_handoff")


# --------------------------------------------------------------------------- instrumented UDF


def _now() -> tuple[float, float]:
    """(wall, this thread's CPU) seconds."""
    return time.perf_counter(), time.thread_time()


def _add(acc: dict[str, Accumulator], name: str, start: tuple[float, float], end: tuple[float, float]) -> None:
    acc[name].add(end[0] - start[0])
    acc[f"{name}@cpu"].add(end[1] - start[1])


class _TimedCall:
    """Callable proxy adding its wall and CPU time to (re-bindable) accumulators."""

    def __init__(self, fn: Callable[..., Any], name: str, acc: dict[str, Accumulator]) -> None:
        self.fn, self.name, self.acc = fn, name, acc
        self.total = (0.0, 0.0)  # local copy, readable inside the task

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        t = _now()
        try:
            return self.fn(*args, **kwargs)
        finally:
            e = _now()
            self.total = (self.total[0] + e[0] - t[0], self.total[1] + e[1] - t[1])
            _add(self.acc, self.name, t, e)


class _TimedSession:
    """onnxruntime session proxy timing `run`."""

    _bench_timed = True

    def __init__(self, inner: Any, acc: dict[str, Accumulator]) -> None:
        self.inner, self.run = inner, _TimedCall(inner.run, "onnx_run", acc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _instrument(scorer: Any, acc: dict[str, Accumulator]) -> list[_TimedCall]:
    """Time session.run and network_input inside the worker's cached scorer (idempotent, per task)."""
    sessions = getattr(scorer, "sessions", [])
    for i, s in enumerate(sessions):
        if getattr(s, "_bench_timed", False):
            s.run.acc = acc
        else:
            sessions[i] = _TimedSession(s, acc)
    pre = scorer.preprocessor
    current = pre.__dict__.get("network_input")
    if current is not None and hasattr(current, "acc"):
        current.acc = acc
    else:
        pre.network_input = _TimedCall(pre.network_input, "network_input", acc)
    return [s.run for s in sessions] + [pre.network_input]


def _nested(proxies: list[_TimedCall]) -> tuple[float, float]:
    return sum(p.total[0] for p in proxies), sum(p.total[1] for p in proxies)


def instrumented_batch_scorer(acc: dict[str, Accumulator]) -> Callable[..., Callable]:
    """A drop-in for adspark.runtime.batch_scorer: the same calls, with timers around each.

    Mirrors batch_scorer's loop body (score_arrays = preprocessor.transform + score_features); the
    split of score_features into network_input / session.run / the rest ("error") uses proxies.
    Each phase is recorded as wall time and as the Python thread's CPU time (`name@cpu`).
    """

    def factory(key: str, payload: Any) -> Callable[[Iterator[pa.StructArray]], Iterator[pa.Array]]:
        def score(batches: Iterator[pa.StructArray]) -> Iterator[pa.Array]:
            from adspark.runtime import cached_scorer, unpack_payload

            t = _now()
            scorer = cached_scorer(key, lambda: unpack_payload(payload.value))
            proxies = _instrument(scorer, acc)
            _add(acc, "scorer_init", t, _now())
            it = iter(batches)
            while True:
                t0 = _now()
                try:
                    batch = next(it)
                except StopIteration:
                    break
                t1 = _now()
                arrays = batch.flatten()
                t2 = _now()
                features = scorer.preprocessor.transform(arrays)
                t3 = _now()
                before = _nested(proxies)
                scores = scorer.score_features(features)
                after = _nested(proxies)
                t4 = _now()
                out = pa.array(scores, type=pa.float64())
                t5 = _now()
                for name, a, b in (("input_wait", t0, t1), ("flatten", t1, t2), ("preprocess", t2, t3),
                                   ("to_arrow", t4, t5)):
                    _add(acc, name, a, b)
                inner = (after[0] - before[0], after[1] - before[1])
                _add(acc, "error", (t3[0] + inner[0], t3[1] + inner[1]), t4)  # score_features minus proxies
                acc["batches"].add(1)
                acc["rows"].add(len(batch))
                yield out
                _add(acc, "output_handoff", t5, _now())

        return score

    return factory


# --------------------------------------------------------------------------- stage metrics


class Stages:
    """Stage metrics from the Spark UI REST API, grouped by job description."""

    def __init__(self, spark: SparkSession) -> None:
        self.base = f"{spark.sparkContext.uiWebUrl}/api/v1/applications/{spark.sparkContext.applicationId}"
        self.seen: set[int] = set()

    def new_since_last(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(f"{self.base}/stages?status=complete", timeout=30) as r:
            stages = json.load(r)
        fresh = [s for s in stages if s["stageId"] not in self.seen]
        self.seen |= {s["stageId"] for s in stages}
        return fresh

    @staticmethod
    def summarize(stages: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for s in stages:
            d = out.setdefault(s.get("description") or s["name"][:40], {"stages": 0, "tasks": 0, "run_s": 0.0,
                                                                      "cpu_s": 0.0, "gc_s": 0.0})
            d["stages"] += 1
            d["tasks"] += s["numTasks"]
            d["run_s"] += s["executorRunTime"] / 1e3
            d["cpu_s"] += s["executorCpuTime"] / 1e9
            d["gc_s"] += s["jvmGcTime"] / 1e3
        return {k: {m: round(v, 2) for m, v in d.items()} for k, d in out.items()}


# --------------------------------------------------------------------------- runs


# (modules to look in, function, label, nested in another label)
WRAPS: tuple[tuple[tuple[str, ...], str, str, bool], ...] = (
    (("adspark.pipeline",), "load_artifact", "load_artifact", False),
    (("adspark.pipeline",), "check_output_target", "check_output_target", False),
    (("adspark.pipeline",), "read_table", "read_table", False),
    (("adspark.pipeline",), "check_no_missing", "check_no_missing", False),
    (("adspark.pipeline",), "fingerprint", "input fingerprint (rows + id checksum)", False),
    (("adspark.publish", "adspark.io"), "output_stats", "output_stats (read-back check)", False),
    (("adspark.publish",), "duplicate_ids", "  of which duplicate_ids", True),  # before the fingerprint check
    (("adspark.publish", "adspark.io"), "_swap", "swap (renames)", False),
    (("adspark.publish",), "_swap_partitions", "swap partitions", False),
)


def _timed(fn: Callable[..., Any], label: str, timings: dict[str, float], spark: SparkSession) -> Callable[..., Any]:
    """`fn`, timing itself into timings[label] and labelling its Spark jobs with `label`."""
    sc = spark.sparkContext

    def timed(*args: Any, **kwargs: Any) -> Any:
        previous = sc.getLocalProperty("spark.job.description")
        sc.setJobDescription(label.strip())
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            timings[label] = timings.get(label, 0.0) + time.perf_counter() - t
            sc.setJobDescription(previous)  # type: ignore[arg-type]

    return timed


def _wrap_all(stack: contextlib.ExitStack, timings: dict[str, float], spark: SparkSession) -> set[str]:
    """Install the WRAPS that exist in the current adspark; the labels of nested ones."""
    nested: set[str] = set()
    for modules, name, label, inner in WRAPS:
        for module_name in modules:
            module = importlib.import_module(module_name)
            if hasattr(module, name):
                stack.enter_context(_patched(module, name, _timed(getattr(module, name), label, timings, spark)))
                if inner:
                    nested.add(label)
                break
    writer = importlib.import_module("pyspark.sql.readwriter").DataFrameWriter
    stack.enter_context(_patched(writer, "parquet", _timed(writer.parquet, "score + write (staging)", timings, spark)))
    frame = type(spark.range(1))
    stack.enter_context(_patched(frame, "count", _timed(frame.count, "count (input rows)", timings, spark)))
    return nested


def run_adspark(spark: SparkSession, cfg: JobConfig) -> tuple[float, dict[str, float], dict[str, float]]:
    timings: dict[str, float] = {}
    names = [*UDF_PHASES, *(f"{p}@cpu" for p in UDF_PHASES), "batches", "rows"]
    acc = {k: spark.sparkContext.accumulator(0.0) for k in names}
    with contextlib.ExitStack() as stack:
        nested = _wrap_all(stack, timings, spark)
        stack.enter_context(_patched(adspark.scoring, "batch_scorer", instrumented_batch_scorer(acc)))
        t = time.perf_counter()
        adspark.pipeline.score(spark, cfg)
        total = time.perf_counter() - t
    timings["other (driver: schema checks, manifest, ...)"] = total - sum(
        v for k, v in timings.items() if k not in nested
    )
    return total, timings, {k: a.value for k, a in acc.items()}


@contextlib.contextmanager
def _patched(module: Any, name: str, value: Any) -> Iterator[None]:
    original = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, original)


def _identity(batches: Iterator[pa.StructArray]) -> Iterator[pa.Array]:
    for batch in batches:
        yield batch.field(0).cast(pa.float64())


def _identity_columns(batches: Iterator[tuple[pa.Array, ...]]) -> Iterator[pa.Array]:
    for cols in batches:
        yield cols[0].cast(pa.float64())


@contextlib.contextmanager
def _batch_rows(spark: SparkSession, rows: int | None) -> Iterator[None]:
    """spark.sql.execution.arrow.maxRecordsPerBatch for the duration of the block."""
    key = "spark.sql.execution.arrow.maxRecordsPerBatch"
    before = spark.conf.get(key)
    if rows:
        spark.conf.set(key, str(rows))
    try:
        yield
    finally:
        spark.conf.set(key, before)


def run_identity(df: DataFrame, out: str, ids_only: bool = False, shape: str = "struct", dtype: str = "double",
                 batch_rows: int | None = None) -> float:
    feats = [F.col(c).cast(dtype) for c in df.columns if c != "txn_id"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        if shape == "struct":
            score = F.arrow_udf(_identity, "double", ArrowUDFType.SCALAR_ITER)(F.struct(*feats))
        else:
            score = F.arrow_udf(_identity_columns, "double", ArrowUDFType.SCALAR_ITER)(*feats)
    keep = ["txn_id"] if ids_only else df.columns
    with _batch_rows(df.sparkSession, batch_rows):
        t = time.perf_counter()
        df.withColumn("anomaly_score", score).select(*keep, "anomaly_score").write.mode("overwrite").parquet(out)
        return time.perf_counter() - t


def _pass_through(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """mapInArrow body: every input column back, plus the first feature as the "score"."""
    for rb in batches:
        yield pa.RecordBatch.from_arrays([*rb.columns, rb.column(1)], names=[*rb.schema.names, "anomaly_score"])


def _ids_and_score(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """mapInArrow body: the id column plus the first feature as the "score"."""
    for rb in batches:
        yield pa.RecordBatch.from_arrays([rb.column(0), rb.column(1)], names=["txn_id", "anomaly_score"])


def run_map_in_arrow(df: DataFrame, out: str, ids_only: bool = False) -> float:
    """The same round trip as run_identity, as DataFrame.mapInArrow instead of a scalar Arrow UDF.

    Python gets whole record batches (ids + features) and returns the output rows, so the JVM
    neither buffers the input rows nor joins the UDF's result back to them.
    """
    feats = [c for c in df.columns if c != "txn_id"]
    cols = df.select("txn_id", *[F.col(c).cast("double") for c in feats])
    if ids_only:
        mapped = cols.mapInArrow(_ids_and_score, "txn_id long, anomaly_score double")
    else:
        schema = ", ".join(["txn_id long", *[f"`{c}` double" for c in feats], "anomaly_score double"])
        mapped = cols.mapInArrow(_pass_through, schema)
    t = time.perf_counter()
    mapped.write.mode("overwrite").parquet(out)
    return time.perf_counter() - t


def run_adspark_map_in_arrow(df: DataFrame, model: str, out: str) -> float:
    """A scores-only adspark written as mapInArrow: ids + features in, ids + score + flag out.

    Uses adspark's own worker-side scorer (runtime.cached_scorer / score_arrays) and its JVM-side
    feature casts (schema.feature_columns); only the Spark operator differs from adspark_write_ids.
    """
    from adspark.artifact import load_artifact
    from adspark.schema import feature_columns

    artifact = load_artifact(model)
    payload = df.sparkSession.sparkContext.broadcast((json.dumps(artifact.manifest), artifact.files))
    key, threshold = artifact.digest, artifact.threshold
    numeric = [c["name"] for c in artifact.input_schema if c["role"] == "numeric"]
    categorical = [c["name"] for c in artifact.input_schema if c["role"] == "categorical"]

    def score(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from adspark.runtime import cached_scorer, unpack_payload

        scorer = cached_scorer(key, lambda: unpack_payload(payload.value))
        for rb in batches:
            scores = scorer.score_arrays(rb.columns[1:])
            yield pa.RecordBatch.from_arrays(
                [rb.column(0), pa.array(scores, type=pa.float64()), pa.array(scores > threshold)],
                names=["txn_id", "anomaly_score", "is_anomaly"],
            )

    cols = df.select("txn_id", *feature_columns(numeric, categorical))
    mapped = cols.mapInArrow(score, "txn_id long, anomaly_score double, is_anomaly boolean")
    t = time.perf_counter()
    mapped.write.mode("overwrite").parquet(out)
    return time.perf_counter() - t


def run_copy(df: DataFrame, out: str) -> float:
    t = time.perf_counter()
    df.write.mode("overwrite").parquet(out)
    return time.perf_counter() - t


def run_adspark_write(df: DataFrame, model: str, out: str, observe: bool = False,
                      batch_rows: int | None = None, ids_only: bool = False) -> float:
    """adspark's scoring UDF and write, without the count, read-back check and swap (a lower bound)."""
    from pyspark.sql import Observation

    from adspark.artifact import load_artifact
    from adspark.scoring import score_dataframe

    spark = df.sparkSession
    keep = ["txn_id"] if ids_only else df.columns
    scored = score_dataframe(spark, df, load_artifact(model)).select(*keep, "anomaly_score", "is_anomaly")
    obs = Observation("adspark")
    if observe:  # the read-back check's numbers, gathered while writing instead of in a second pass
        score = F.col("anomaly_score")
        finite = score.isNotNull() & ~F.isnan(score) & (F.abs(score) != F.lit(float("inf")))
        scored = scored.observe(
            obs,
            F.count(F.lit(1)).alias("rows"),
            F.sum(F.col("is_anomaly").cast("long")).alias("flagged"),
            F.sum((~finite).cast("long")).alias("non_finite"),
            F.percentile_approx(score, [0.5, 0.9, 0.99, 0.999], 10000).alias("q"),
        )
    with _batch_rows(spark, batch_rows):
        t = time.perf_counter()
        scored.write.mode("overwrite").parquet(out)
        if observe:
            _ = obs.get["rows"]  # the metrics are there as soon as the write returns
        return time.perf_counter() - t


# --------------------------------------------------------------------------- main


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", default="/tmp/adspark-bench")
    p.add_argument("--rows", type=int, default=2_000_000)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--cases", default=",".join(CORE), help=f"comma-separated subset of {','.join(CORE)}")
    p.add_argument("--cold", action="store_true",
                   help="no warm-up: the first case runs in a fresh JVM with no Python workers yet, like the CLI")
    p.add_argument("--experiments", action="store_true",
                   help=f"also run what-if cases: {', '.join(EXPERIMENTS)}")
    p.add_argument("--conf", action="append", default=[], help="extra Spark setting key=value (repeatable)")
    return p.parse_args()


def _print_udf(udf: dict[str, float]) -> None:
    compute = [k for k in UDF_PHASES if k not in ("input_wait", "output_handoff", "scorer_init")]
    rows = max(udf["rows"], 1)
    print(f"  UDF body, summed over both Python workers ({int(udf['batches'])} batches, {int(rows):,} rows):")
    print(f"    {'phase':<16} {'wall s':>8} {'cpu s':>8} {'cpu us/row':>10}")
    for k in UDF_PHASES:
        print(f"    {k:<16} {udf[k]:8.2f} {udf[k + '@cpu']:8.2f} {udf[k + '@cpu'] / rows * 1e6:10.3f}")
    wall, cpu = sum(udf[k] for k in compute), sum(udf[k + "@cpu"] for k in compute)
    print(f"    {'= compute':<16} {wall:8.2f} {cpu:8.2f} {cpu / rows * 1e6:10.3f}")


def _print_phases(phases: dict[str, float]) -> None:
    labels = [label for _, _, label, _ in WRAPS]
    order = [*labels[:5], "count (input rows)", "score + write (staging)", *labels[5:]]
    rank = {label: i for i, label in enumerate(order)}
    for k, v in sorted(phases.items(), key=lambda kv: rank.get(kv[0], len(rank))):
        print(f"  {k:<46} {v:6.2f} s")


CORE = ("copy", "identity", "identity_ids", "adspark", "adspark_ids")
EXPERIMENTS = ("identity_100k", "identity_columns", "identity_f32", "identity_mapinarrow", "identity_ids_mapinarrow",
               "adspark_write", "adspark_write_100k", "adspark_write_observe", "adspark_write_ids",
               "adspark_write_ids_mapinarrow")


def run_case(name: str, spark: SparkSession, df: DataFrame, work: Path, rows: int, out: Path) -> dict[str, Any]:
    data, model = work / f"data-{rows}", str(work / f"model-{rows}")
    cases: dict[str, Callable[[], float]] = {
        "copy": lambda: run_copy(df, str(out)),
        "identity": lambda: run_identity(df, str(out)),
        "identity_ids": lambda: run_identity(df, str(out), ids_only=True),
        "identity_100k": lambda: run_identity(df, str(out), batch_rows=100_000),
        "identity_columns": lambda: run_identity(df, str(out), shape="columns"),
        "identity_f32": lambda: run_identity(df, str(out), dtype="float"),
        "identity_mapinarrow": lambda: run_map_in_arrow(df, str(out)),
        "identity_ids_mapinarrow": lambda: run_map_in_arrow(df, str(out), ids_only=True),
        "adspark_write": lambda: run_adspark_write(df, model, str(out)),
        "adspark_write_100k": lambda: run_adspark_write(df, model, str(out), batch_rows=100_000),
        "adspark_write_observe": lambda: run_adspark_write(df, model, str(out), observe=True),
        "adspark_write_ids": lambda: run_adspark_write(df, model, str(out), ids_only=True),
        "adspark_write_ids_mapinarrow": lambda: run_adspark_map_in_arrow(df, model, str(out)),
    }
    if name in cases:
        return {"seconds": cases[name]()}
    config = work / ("adspark_scores_only.yaml" if name.endswith("_ids") else "adspark.yaml")
    cfg = apply_overrides(load_config(config), input=str(data), output=str(out), model_dir=model)
    seconds, phases, udf = run_adspark(spark, cfg)
    return {"seconds": seconds, "phases": phases, "udf": udf}


def main() -> None:
    args = _args()
    work = Path(args.workdir)
    names = [c for c in args.cases.split(",") if c] + (list(EXPERIMENTS) if args.experiments else [])
    outdir = work / "out-profile"
    spark = build_session("bench-profile", extra=parse_conf(args.conf))
    stages = Stages(spark)
    df = spark.read.parquet(str(work / f"data-{args.rows}"))
    if not args.cold:
        run_copy(df, str(outdir / "warmup"))  # JIT, file system caches
        run_identity(df, str(outdir / "warmup"), ids_only=True)  # Python workers spawned and imports done
    stages.new_since_last()
    results: dict[str, list[dict[str, Any]]] = {}
    for rep in range(args.repeats):
        for name in names:
            out = outdir / name
            shutil.rmtree(out, ignore_errors=True)
            entry = run_case(name, spark, df, work, args.rows, out)
            entry["stages"] = Stages.summarize(stages.new_since_last())
            results.setdefault(name, []).append(entry)
            print(f"rep {rep + 1} {name:<28} {entry['seconds']:6.1f} s", flush=True)
    report(results)
    (work / "profile_score_job.json").write_text(json.dumps(results, indent=2))
    print(f"\nwritten to {work / 'profile_score_job.json'}")
    spark.stop()


def report(results: dict[str, list[dict[str, Any]]]) -> None:
    print("\nseconds per case (min over repeats; driver-side wall clock; the first case of a --cold run\n"
          "includes the JIT warm-up and Python worker start-up that later cases do not pay)")
    for name, entries in results.items():
        secs = [e["seconds"] for e in entries]
        every = [round(x, 1) for x in secs]
        print(f"  {name:<28} min {min(secs):6.1f}  median {statistics.median(secs):6.1f}  all {every}")
    for name in ("adspark", "adspark_ids"):
        if name not in results:
            continue
        best = min(results[name], key=lambda e: e["seconds"])
        print(f"\n{name}: phases of its fastest run ({best['seconds']:.1f} s)")
        _print_phases(best["phases"])
        _print_udf(best["udf"])
        print("  Spark stages by phase: executor run s / CPU s / GC s (summed over tasks)")
        for k, v in best["stages"].items():
            print(f"    {k:<32} {v['run_s']:7.2f} {v['cpu_s']:7.2f} {v['gc_s']:6.2f}  ({v['tasks']} tasks)")
    for name in [n for n in results if not n.startswith("adspark")]:
        best = min(results[name], key=lambda e: e["seconds"])
        line = ", ".join(f"{k}: run {v['run_s']:.1f} s cpu {v['cpu_s']:.1f} s" for k, v in best["stages"].items())
        print(f"\n{name} stages: {line}")


if __name__ == "__main__":
    main()
