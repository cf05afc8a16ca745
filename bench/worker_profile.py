"""Python scoring worker: cold start, peak memory, and linear cost in rows.

    python bench/worker_profile.py [--workdir /tmp/adspark-bench] [--rows 2000000] [--smoke]

Uses the table and model that `bench/score_vs_copy.py` prepared in the workdir
(2M rows x 30 doubles + id, an adspark autoencoder; --smoke: its 200k-row table).
Prints, and writes into bench/README.md (section `worker_profile`):
- cold start: a fresh Python process importing the scoring runtime, building the
  onnxruntime session from the artifact bytes and scoring its first 10k-row batch;
  and, inside Spark, a fresh session's Python workers: the time from a worker's
  fork (and from its pyspark daemon's start) to its first scored Arrow batch;
- peak RSS of the Python worker processes during a real `adspark score` run
  (VmHWM from /proc, polled), and of a standalone process scoring all 2M rows;
- scoring-stage time for N and 4N rows in one warm Spark session (linearity).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _results import machine_line, write_section

LINES: list[str] = []


def note(line: str) -> None:
    """Print a result line and keep it for the README section."""
    print(line, flush=True)
    LINES.append(line)

COLD_START = """
import time; t0 = time.perf_counter()
import glob, pyarrow.parquet as pq
from adspark.artifact import load_artifact
from adspark.runtime import build_scorer
art = load_artifact({model!r})
scorer = build_scorer(art.manifest, art.files)
t = pq.read_table(sorted(glob.glob({data!r} + "/*.parquet"))[0]).slice(0, 10000)
cols = [t.column(c["name"]) for c in art.input_schema]
t1 = time.perf_counter(); scorer.score_arrays(cols); t2 = time.perf_counter()
print(f"{{t2 - t0:.3f}} {{t1 - t0:.3f}} {{t2 - t1:.4f}}")
"""

ALL_ROWS = """
import glob, resource, pyarrow.parquet as pq
from adspark.artifact import load_artifact
from adspark.runtime import build_scorer
art = load_artifact({model!r})
scorer = build_scorer(art.manifest, art.files)
for path in sorted(glob.glob({data!r} + "/*.parquet")):
    for batch in pq.ParquetFile(path).iter_batches(batch_size=10000):
        scorer.score_arrays([batch.column(c["name"]) for c in art.input_schema])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def _python(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def cold_start(model: str, data: str, repeats: int = 5) -> None:
    runs = [tuple(map(float, _python(COLD_START.format(model=model, data=data)).split())) for _ in range(repeats)]
    runs.sort()
    total, setup, first = runs[len(runs) // 2]
    note(f"cold start (median of {repeats}): first batch scored {total:.2f} s after process start "
          f"(imports + session {setup:.2f} s, the 10k-row batch itself {first * 1000:.1f} ms)")


def _worker_hwm_mb() -> float:
    peak = 0.0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"pyspark.daemon" not in cmd and b"pyspark.worker" not in cmd:
                continue
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) / 1024)
        except OSError:
            continue
    return peak


def worker_memory(workdir: Path, model: str, data: str, rows: int) -> None:
    standalone = float(_python(ALL_ROWS.format(model=model, data=data)))
    note(f"peak RSS, one process scoring all {rows:,} rows in 10k batches: {standalone:.0f} MB")
    config = workdir / "adspark.yaml"
    peak = [0.0]
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _worker_hwm_mb())
            time.sleep(0.2)

    thread = threading.Thread(target=poll)
    thread.start()
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable)
    cmd = [str(Path(sys.executable).parent / "adspark"), "-q", "score", "--config", str(config),
           "--model-dir", model, "--input", data, "--output", str(workdir / "out" / "worker_profile")]
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    done.set()
    thread.join()
    note(f"peak RSS of a Spark Python worker during `adspark score` ({rows:,} rows, local[2]): {peak[0]:.0f} MB")


def _since_boot(pid: int | str) -> float:
    """Seconds from boot to the start of process `pid` (/proc clock ticks)."""
    ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    return ticks / os.sysconf("SC_CLK_TCK")


def _uptime() -> float:
    return float(Path("/proc/uptime").read_text().split()[0])


def _stamp(folder: str, entered: float, arrived: float) -> None:
    """In a Spark Python worker, once: seconds from its fork to entering the UDF, to its first
    input batch and to that batch scored, and from its daemon's start to the batch scored."""
    now, forked = _uptime(), _since_boot("self")
    target = Path(folder) / f"{os.getpid()}.txt"
    if not target.exists():
        target.write_text(f"{now - forked:.3f} {entered - forked:.3f} {arrived - forked:.3f} "
                          f"{now - _since_boot(os.getppid()):.3f}")


def spark_cold_start(spark: Any, art: Any, data: str) -> None:
    """First-batch latency of the fresh Python workers of a fresh session (run it as the first Python job)."""
    import tempfile

    from pyspark.sql import functions as F

    from adspark.runtime import batch_scorer
    from adspark.scoring import broadcast_artifact, model_features, scalar_iter_udf

    body, folder = batch_scorer(art.digest, broadcast_artifact(spark, art)), tempfile.mkdtemp()

    def timed(batches: Iterator[Any]) -> Iterator[Any]:
        entered, arrived = _uptime(), [0.0]

        def noted(source: Iterator[Any]) -> Iterator[Any]:
            for batch in source:
                arrived[0] = arrived[0] or _uptime()
                yield batch

        for i, scores in enumerate(body(noted(batches))):
            if i == 0:
                _stamp(folder, entered, arrived[0])
            yield scores

    features = F.struct(*model_features(art))
    spark.read.parquet(data).select(scalar_iter_udf(timed)(features)).write.format("noop").mode("overwrite").save()
    runs = sorted(tuple(map(float, p.read_text().split())) for p in Path(folder).glob("*.txt"))
    for scored, entered, arrived, daemon in runs:
        note(f"cold start in Spark, a fresh worker: first batch scored {scored:.2f} s after the worker's fork "
              f"({daemon:.2f} s after its pyspark daemon started); the UDF was entered at {entered:.2f} s, "
              f"its first Arrow batch arrived at {arrived:.2f} s")


def linearity(workdir: Path, model: str, data: str, rows: int) -> None:
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from adspark import pipeline
    from adspark.artifact import load_artifact
    from adspark.config import parse_config
    from adspark.session import get_spark

    cfg = parse_config({"columns": {"id": ["txn_id"]}, "model_dir": model, "spark": {"spark.master": "local[2]"}})
    spark = get_spark(cfg)
    art = load_artifact(model)
    spark_cold_start(spark, art, data)
    quarter = str(workdir / f"data-quarter-{rows}")
    if not Path(quarter).exists():
        spark.read.parquet(data).where("txn_id % 4 = 0").write.parquet(quarter)
    out = cfg.output.model_copy(update={"path": str(workdir / "out" / "lin")})
    times: dict[str, list[float]] = {"N/4": [], "N": []}
    for _ in range(3):
        for label, path in (("N/4", quarter), ("N", data)):
            job = cfg.model_copy(update={"input": cfg.input.model_copy(update={"path": path}), "output": out})
            start = time.perf_counter()
            pipeline.score(spark, job, art)
            times[label].append(time.perf_counter() - start)
    small, big = sorted(times["N/4"])[1], sorted(times["N"])[1]
    note(f"scoring stage, warm session (median of 3): {rows // 4:,} rows {small:.1f} s, {rows:,} rows {big:.1f} s, "
          f"ratio {big / small:.2f} (linear = 4.0)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default="/tmp/adspark-bench")
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--smoke", action="store_true", help="the 200,000-row table of score_vs_copy.py --smoke")
    parser.add_argument("--readme", action=argparse.BooleanOptionalAction, default=None,
                        help="write the results into bench/README.md (default: yes, except with --smoke)")
    args = parser.parse_args()
    rows = 200_000 if args.smoke else args.rows
    workdir = Path(args.workdir)
    model, data = str(workdir / f"model-{rows}"), str(workdir / f"data-{rows}")
    if not Path(model).exists():
        sys.exit(f"run bench/score_vs_copy.py --workdir {workdir} --rows {rows} first (no model at {model})")
    machine = machine_line()
    cold_start(model, data)
    worker_memory(workdir, model, data, rows)
    linearity(workdir, model, data, rows)
    if args.readme if args.readme is not None else not args.smoke:
        flags = " --smoke" if args.smoke else ""
        body = [f"`python bench/worker_profile.py{flags}`: the autoencoder and table of score_vs_copy.py "
                f"({rows:,} rows x 30 doubles). {machine}.", ""]
        write_section("worker_profile", "\n".join(body + [f"- {line}" for line in LINES]))


if __name__ == "__main__":
    main()
