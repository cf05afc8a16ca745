"""LSTM scoring speed: against a Parquet copy and an identity Arrow UDF, and on one core against two.

    python bench/sequence_vs_copy.py                 # full: 1M-event host log, 2M-event series and skewed log
    python bench/sequence_vs_copy.py --smoke         # 100k / 200k events, 1 round (a few minutes)
    python bench/sequence_vs_copy.py --shapes series --series-events 1000000 --repeats 2

Three event tables (event_id, host, ts, latency_ms, template of 20 values; every host walks a
template chain, latency set by the template; rows shuffled; 8 Parquet files), each with an LSTM
trained once by `adspark train` (window `--window`, hidden [32], a `--sample-rows` sample,
`--epochs` epochs: the scoring cost does not depend on how well it is trained):

- hosts:  `--events` events over `--entities` hosts. Variants on local[2]: `copy` (read, write
          Parquet), `order` (the copy, shuffled by host and sorted by time within each partition: what
          ordering the streams costs with no UDF), `identity` (an Arrow UDF returning its input over the
          same feature columns: the JVM<->Python transfer floor), `plan` (adspark's sequence plan with
          a UDF that returns 0 instead of running the network: bench/_sequence_plan_job.py), `score`
          (`adspark score`, every column + the scores). Target: score/copy <= 2.0. Then the LSTM scorer's steps
          (encode, windows, onnxruntime, surprise) timed on the driver, per 10k-event batch.
- series: `--series-events` events, no `columns.entity`: one series. `score` on local[1] and local[2],
          and `copy` on both: what a second core gives the plainest job over the same table.
- skewed: `--series-events` events, host-0 holds half of them, the rest spread over `--entities`
          hosts. `score` on local[1] and local[2].
          Target for series and skewed: local[1] / local[2] >= 1.7.

Plus `noop` (start Python + JVM + SparkSession, stop) on local[1] and local[2], for the figures
net of start-up. Every variant is its own process, the order rotates every round, and for each
run the CPU seconds of other processes on the machine are recorded (`cpu other`: how much the
run was disturbed). Writes the table into bench/README.md (section `sequence_vs_copy`) unless
--no-readme; --smoke writes nothing unless --readme.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from _results import load_average, machine_line, write_section
from score_vs_copy import run_timed

BENCH = Path(__file__).resolve().parent
TEMPLATES = 20
SHAPES = ("hosts", "series", "skewed")


def make_events(path: Path, events: int, entities: int, skew: float = 0.0, seed: int = 7, files: int = 8) -> None:
    """Hosts walk a template chain (each template has 3 successors); latency depends on the template.

    entities = 0: one series (the host column is constant). skew: the share of events of host 0.
    """
    rng = np.random.default_rng(seed)
    host = rng.integers(0, max(entities, 1), events)
    if skew:
        host = np.where(rng.random(events) < skew, 0, rng.integers(1, max(entities, 2), events))
    succ = rng.integers(0, TEMPLATES, (TEMPLATES, 3))
    steps = rng.integers(0, 3, events)
    order = np.argsort(host, kind="stable")
    tpl = np.zeros(events, dtype=np.int64)
    prev = np.zeros(host.max() + 1, dtype=np.int64)
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
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    for i, idx in enumerate(np.array_split(np.arange(events), files)):
        pq.write_table(table.take(pa.array(idx)), path / f"part-{i:02d}.parquet")


class Shape:
    """One event table, its model and its configs, under <workdir>/<name>."""

    def __init__(self, name: str, workdir: Path, events: int, entities: int, args: argparse.Namespace) -> None:
        self.name, self.events, self.entities, self.args = name, events, entities, args
        self.dir = workdir / name
        self.data, self.model = self.dir / "events", self.dir / "model"

    def spec(self) -> dict[str, Any]:
        skew = 0.5 if self.name == "skewed" else 0.0
        entities = 0 if self.name == "series" else self.entities
        return {"events": self.events, "entities": entities, "skew": skew, "window": self.args.window,
                "sample_rows": self.args.sample_rows, "epochs": self.args.epochs}

    def config(self, cores: int) -> Path:
        spec = self.spec()
        job = {
            "input": {"path": str(self.data)},
            "columns": {"id": ["event_id"], "entity": ["host"] if spec["entities"] else [], "timestamp": "ts",
                        "numeric": ["latency_ms"], "categorical": ["template"],
                        "exclude": [] if spec["entities"] else ["host"]},
            "model": {"kind": "lstm", "window": spec["window"], "block_events": self.args.block_events},
            "train": {"sample_rows": spec["sample_rows"], "epochs": spec["epochs"]},
            "output": {"path": str(self.dir / f"scored-{cores}")},
            "model_dir": str(self.model),
            "spark": {"spark.master": f"local[{cores}]"},
        }
        path = self.dir / f"job-{cores}.yaml"
        path.write_text(yaml.safe_dump(job))
        return path

    def prepare(self) -> None:
        stamp, spec = self.dir / "spec.json", self.spec()
        if stamp.exists() and json.loads(stamp.read_text()) == spec and (self.model / "manifest.json").exists():
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        make_events(self.data, spec["events"], spec["entities"], spec["skew"])
        shutil.rmtree(self.model, ignore_errors=True)
        seconds, _ = run_timed([sys.executable, "-m", "adspark.cli", "train", "--config", str(self.config(2))],
                               self.dir / "train.log")
        stamp.write_text(json.dumps(spec))
        print(f"{self.name}: {self.events:,} events, model trained in {seconds:.0f} s", flush=True)

    def variants(self) -> dict[str, list[str]]:
        py = sys.executable
        score = {f"score@{c}": [py, "-m", "adspark.cli", "score", "--config", str(self.config(c))] for c in (1, 2)}
        if self.name == "series":  # what two cores give a plain copy of the same table: the machine's ceiling
            return {f"copy@{c}": [py, str(BENCH / "_copy_job.py"), "copy", "--input", str(self.data), "--output",
                                  str(self.dir / f"copied-{c}"), "--master", f"local[{c}]"] for c in (1, 2)} | score
        if self.name != "hosts":
            return score
        return {
            "copy@2": [py, str(BENCH / "_copy_job.py"), "copy", "--input", str(self.data), "--output",
                       str(self.dir / "copied")],
            "order@2": [py, str(BENCH / "_copy_job.py"), "order", "--input", str(self.data), "--output",
                        str(self.dir / "ordered"), "--key", "host", "--sort", "ts"],
            "identity@2": [py, str(BENCH / "_identity_job.py"), "--input", str(self.data), "--output",
                           str(self.dir / "identity"), "--ids", "event_id", "--features", "latency_ms,template"],
            "plan@2": [py, str(BENCH / "_sequence_plan_job.py"), "score", "--config", str(self.config(2)), "--output",
                       str(self.dir / "plan")],
            "score@2": score["score@2"],
        }

    def check(self) -> None:
        for cores in (1, 2):
            run_file = self.dir / f"scored-{cores}" / "_adspark_run.json"
            if run_file.exists():
                run = json.loads(run_file.read_text())
                assert run["input_rows"] == run["output_rows"] == self.events, run


def step_profile(shape: Shape, events: int = 50_000, batch: int = 10_000) -> list[str]:
    """The LSTM scorer's steps on the driver, per `batch` events of the hosts table in stream order.

    Thread CPU milliseconds, not wall: the figures hold on a busy machine too.
    """
    import time

    import pyarrow.dataset as ds

    from adspark.artifact import load_artifact
    from adspark.runtime import build_scorer
    from adspark.runtime.sequence import LstmScorer, stream_windows

    table = ds.dataset(str(shape.data)).head(events).sort_by([("host", "ascending"), ("ts", "ascending")])
    keys = np.unique(table.column("host").to_numpy(zero_copy_only=False), return_inverse=True)[1].astype(np.int64)
    artifact = load_artifact(str(shape.model))
    scorer = build_scorer(artifact.manifest, artifact.files)
    assert isinstance(scorer, LstmScorer)
    steps: dict[str, list[float]] = {"encode": [], "windows": [], "onnx": [], "surprise": []}
    for _ in range(3):
        for start in range(0, table.num_rows - batch + 1, batch):
            arrays = [table.column(c).slice(start, batch) for c in ("latency_ms", "template")]
            t0 = time.thread_time()
            num, x, codes = scorer.encode(arrays)
            t1 = time.thread_time()
            feeds = stream_windows(keys[start:start + batch], x, codes, 0, scorer.window, True)
            t2 = time.thread_time()
            out = scorer.session.run(None, feeds)[0].astype(np.float64)
            t3 = time.thread_time()
            scorer.surprise(out, num, codes)
            t4 = time.thread_time()
            for name, seconds in zip(steps, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                steps[name].append(seconds * 1000)
    med = {k: statistics.median(v) for k, v in steps.items()}
    total = sum(med.values())
    return [f"LSTM scorer per {batch:,}-event batch (median thread CPU, driver, window {scorer.window}): "
            + ", ".join(f"{k} {v:.1f} ms ({v / total:.0%})" for k, v in med.items())
            + f"; {total:.0f} ms in all, {total * 1e6 / batch / 1000:.1f} CPU-s per million events"]


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="small tables, 1 round, tiny training (a few minutes)")
    p.add_argument("--shapes", default=",".join(SHAPES), help=f"comma-separated subset of {','.join(SHAPES)}")
    p.add_argument("--events", type=int, default=1_000_000, help="events of the hosts table")
    p.add_argument("--series-events", type=int, default=2_000_000, help="events of the series and skewed tables")
    p.add_argument("--entities", type=int, default=10_000, help="hosts of the hosts and skewed tables")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--window", type=int, default=32)
    p.add_argument("--block-events", type=int, default=50_000, help="model.block_events for scoring")
    p.add_argument("--sample-rows", type=int, default=50_000)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/adspark-seqbench"))
    p.add_argument("--readme", action=argparse.BooleanOptionalAction, default=None,
                   help="write the table into bench/README.md (default: yes, except with --smoke)")
    args = p.parse_args()
    if args.smoke:
        args.events, args.series_events, args.entities = 100_000, 200_000, 1_000
        args.repeats, args.sample_rows, args.epochs = 1, 10_000, 1
        args.workdir = args.workdir.with_name(args.workdir.name + "-smoke")
    return args


def main() -> int:
    args = _args()
    shapes = [Shape(s, args.workdir, args.events if s == "hosts" else args.series_events, args.entities, args)
              for s in args.shapes.split(",") if s]
    unknown = {s.name for s in shapes} - set(SHAPES)
    if unknown:
        raise SystemExit(f"unknown shapes {sorted(unknown)}; known: {', '.join(SHAPES)}")
    started_load = machine_line()
    for shape in shapes:
        shape.prepare()
    tasks: dict[tuple[str, str], list[str]] = {
        ("-", f"noop@{c}"): [sys.executable, str(BENCH / "_copy_job.py"), "noop", "--master", f"local[{c}]"]
        for c in (1, 2)
    }
    for shape in shapes:
        tasks |= {(shape.name, v): argv for v, argv in shape.variants().items()}
    runs: dict[tuple[str, str], list[tuple[float, float, float]]] = {k: [] for k in tasks}
    keys = list(tasks)
    for r in range(args.repeats):
        for key in keys[r % len(keys):] + keys[: r % len(keys)]:
            log = args.workdir / "logs" / f"{key[0]}-{key[1]}-{r}.log"
            seconds, cpu = run_timed(tasks[key], log)
            runs[key].append((seconds, cpu[0] + cpu[1] + cpu[2], cpu[3]))
            print(f"round {r + 1}/{args.repeats} {key[0]:<7} {key[1]:<11} {seconds:6.1f} s "
                  f"(other processes {cpu[3]:.0f} CPU-s, load {load_average()})", flush=True)
    for shape in shapes:
        shape.check()
    results = {"args": {k: str(v) for k, v in vars(args).items()}, "machine": started_load,
               "runs": [{"table": t, "variant": v, "runs": r} for (t, v), r in runs.items()]}
    (args.workdir / "results.json").write_text(json.dumps(results, indent=2))
    table = report(shapes, runs, args, started_load)
    hosts = [s for s in shapes if s.name == "hosts"]
    if hosts:
        table += "\n\n" + "\n".join(step_profile(hosts[0]))
    print("\n" + table)
    if args.readme if args.readme is not None else not args.smoke:
        write_section("sequence_vs_copy", table)
    return 0


def report(shapes: list[Shape], runs: dict[tuple[str, str], list[tuple[float, float, float]]],
           args: argparse.Namespace, machine: str) -> str:
    med = {k: statistics.median(s for s, _, _ in v) for k, v in runs.items() if v}
    cpu = {k: statistics.median(c for _, c, _ in v) for k, v in runs.items() if v}
    lines = [f"`python bench/sequence_vs_copy.py{' --smoke' if args.smoke else ''}`: {args.repeats} round(s), "
             f"window {args.window}, block_events {args.block_events}. {machine}.", "",
             "| table | events | variant | median s | min s | own CPU s | cpu other s |",
             "|---|---|---|---:|---:|---:|---:|"]
    for (shape, variant), values in runs.items():
        events = next((s.events for s in shapes if s.name == shape), 0)
        lines.append(f"| {shape} | {events:,} | {variant} | {med[shape, variant]:.1f} | "
                     f"{min(s for s, _, _ in values):.1f} | {cpu[shape, variant]:.0f} | "
                     f"{statistics.median(o for _, _, o in values):.0f} |")
    lines += ["", "| ratio | of medians | net of start-up | of own CPU | target |", "|---|---:|---:|---:|---|"]
    noop = {c: med.get(("-", f"noop@{c}"), 0.0) for c in (1, 2)}

    def ratio(name: str, a: tuple[str, str], b: tuple[str, str], target: str) -> None:
        if a in med and b in med:
            na, nb = med[a] - noop[int(a[1][-1])], med[b] - noop[int(b[1][-1])]
            lines.append(f"| {name} | {med[a] / med[b]:.2f} | {na / nb:.2f} | {cpu[a] / cpu[b]:.2f} | {target} |")

    ratio("hosts: score / copy", ("hosts", "score@2"), ("hosts", "copy@2"), "<= 2.0")
    ratio("hosts: score / identity", ("hosts", "score@2"), ("hosts", "identity@2"), "")
    ratio("hosts: identity / copy", ("hosts", "identity@2"), ("hosts", "copy@2"), "")
    ratio("hosts: ordered copy (shuffle and sort by stream, no UDF) / copy", ("hosts", "order@2"), ("hosts", "copy@2"),
          "")
    ratio("hosts: plan without the network / copy", ("hosts", "plan@2"), ("hosts", "copy@2"), "")
    ratio("hosts: score / plan without the network", ("hosts", "score@2"), ("hosts", "plan@2"), "")
    for name in ("series", "skewed"):
        ratio(f"{name}: local[1] / local[2]", (name, "score@1"), (name, "score@2"), ">= 1.7")
    ratio("series: a plain copy, local[1] / local[2]", ("series", "copy@1"), ("series", "copy@2"), "")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
