"""Wall time of `adspark score` with the LSTM against a plain Spark Parquet copy of the same event table.

    python bench/sequence_vs_copy.py [--events 1000000] [--entities 10000] [--repeats 3]
                                     [--workdir /tmp/adspark-seqbench] [--window 32]

Prepares once (cached in the workdir): an event table of `events` rows over `entities` hosts
(event_id, host, ts, latency_ms, template; rows shuffled, 8 Parquet files), and an LSTM model trained
with `adspark train` on it (defaults: 200k-event sample, `model.window`, training time printed).
Then runs `copy` (read, write Parquet) and `score` (`python -m adspark.cli score`, every column plus
the scores) as separate processes, alternated, `repeats` times, on local[2], and prints the medians,
the minima and the ratio score/copy (target <= 3).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
TEMPLATES = 20


def make_events(path: Path, events: int, entities: int, seed: int = 7, files: int = 8) -> None:
    """Hosts walk a template chain (each template has 3 successors); latency depends on the template."""
    rng = np.random.default_rng(seed)
    host = rng.integers(0, entities, events)
    succ = rng.integers(0, TEMPLATES, (TEMPLATES, 3))
    steps = rng.integers(0, 3, events)
    order = np.argsort(host, kind="stable")
    tpl = np.zeros(events, dtype=np.int64)
    prev = np.zeros(entities, dtype=np.int64)
    for i in order:  # a per-host chain; ~1 s per million events
        prev[host[i]] = succ[prev[host[i]], steps[i]]
        tpl[i] = prev[host[i]]
    ts = np.zeros(events, dtype=np.int64)
    ts[order] = np.arange(events) * 1000  # increasing within each host (microseconds)
    latency = 5.0 * (1 + tpl) + rng.gamma(2.0, 1.0, events)
    table = pa.table({
        "event_id": np.arange(events, dtype=np.int64),
        "host": pa.array([f"host-{h:05d}" for h in host]),
        "ts": pa.array(ts, type=pa.timestamp("us")),
        "latency_ms": latency,
        "template": pa.array([f"T{t:02d}" for t in tpl]),
    })
    table = table.take(pa.array(rng.permutation(events)))
    path.mkdir(parents=True, exist_ok=True)
    for i, idx in enumerate(np.array_split(np.arange(events), files)):
        pq.write_table(table.take(pa.array(idx)), path / f"part-{i:02d}.parquet")


def job_config(workdir: Path, window: int) -> Path:
    job = {
        "input": {"path": str(workdir / "events")},
        "columns": {"id": ["event_id"], "entity": ["host"], "timestamp": "ts", "numeric": ["latency_ms"],
                    "categorical": ["template"]},
        "model": {"kind": "lstm", "window": window},
        "output": {"path": str(workdir / "scored")},
        "model_dir": str(workdir / "model"),
        "spark": {"spark.master": "local[2]"},
    }
    path = workdir / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    return path


def timed(cmd: list[str], log: Path) -> float:
    start = time.perf_counter()
    with open(log, "w") as out:
        subprocess.run(cmd, cwd=REPO, check=True, stdout=out, stderr=subprocess.STDOUT,
                       env={**os.environ, "PYSPARK_PYTHON": sys.executable})
    return time.perf_counter() - start


def prepare(args: argparse.Namespace, workdir: Path) -> Path:
    stamp = workdir / "events.json"
    wanted = {"events": args.events, "entities": args.entities}
    if not stamp.exists() or json.loads(stamp.read_text()) != wanted:
        started = time.perf_counter()
        make_events(workdir / "events", args.events, args.entities)
        stamp.write_text(json.dumps(wanted))
        print(f"data: {args.events} events over {args.entities} hosts in {time.perf_counter() - started:.1f} s")
    conf = job_config(workdir, args.window)
    if not (workdir / "model" / "manifest.json").exists() or args.retrain:
        seconds = timed([sys.executable, "-m", "adspark.cli", "train", "--config", str(conf)], workdir / "train.log")
        manifest = json.loads((workdir / "model" / "manifest.json").read_text())
        print(f"train: {seconds:.1f} s wall (process), fit {manifest['training']['seconds']:.1f} s, "
              f"{manifest['training']['sample_rows']} sampled events")
    return conf


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=1_000_000)
    p.add_argument("--entities", type=int, default=10_000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--window", type=int, default=32)
    p.add_argument("--workdir", default="/tmp/adspark-seqbench")
    p.add_argument("--retrain", action="store_true")
    args = p.parse_args()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    conf = prepare(args, workdir)
    runs: dict[str, list[float]] = {"copy": [], "score": []}
    commands = {
        "copy": [sys.executable, str(BENCH / "_copy_job.py"), "copy", "--input", str(workdir / "events"),
                 "--output", str(workdir / "copied")],
        "score": [sys.executable, "-m", "adspark.cli", "score", "--config", str(conf)],
    }
    for r in range(args.repeats):
        for name in (("copy", "score") if r % 2 == 0 else ("score", "copy")):
            runs[name].append(timed(commands[name], workdir / f"{name}-{r}.log"))
            print(f"round {r + 1} {name}: {runs[name][-1]:.1f} s", flush=True)
    run = json.loads((workdir / "scored" / "_adspark_run.json").read_text())
    assert run["input_rows"] == run["output_rows"] == args.events, run
    med = {k: statistics.median(v) for k, v in runs.items()}
    print(f"\n{args.events} events, {args.entities} hosts, window {args.window}, local[2], {args.repeats} rounds")
    for name, values in runs.items():
        print(f"  {name:<6} median {med[name]:.1f} s  min {min(values):.1f} s  ({args.events / med[name]:,.0f} ev/s)")
    print(f"  score/copy = {med['score'] / med['copy']:.2f} (medians), {min(runs['score']) / min(runs['copy']):.2f} "
          f"(minima); target <= 3")
    print(f"  every event once: input {run['input_rows']} = output {run['output_rows']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
