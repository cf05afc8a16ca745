"""Wall time of `adspark score` against a plain Spark Parquet copy and the textbook Keras pandas UDF.

    python bench/score_vs_copy.py [--rows 2000000] [--repeats 3] [--workdir /tmp/adspark-bench]
                                  [--variants noop,copy,score,scores_only,identity,textbook
                                              [,score_mapinarrow,scores_only_udf,score_bare,
                                               score_unmonitored]]
                                  [--conf k=v ...]
                                  [--quiet-wait 15] [--append] [--report-only] [--retrain]

Prepares once (cached in the workdir): a Parquet table of `rows` x 30 float64
features `f0..f29` plus an int64 `txn_id`, an adspark model (`adspark train`) and
a Keras model for the textbook baseline. Then runs every variant as a separate
process, round-robin, `repeats` times, on local[2] with identical Spark settings:

- noop:        start Python + JVM + SparkSession, stop (start-up overhead alone)
- copy:        spark.read.parquet(in).write.parquet(out)
- score:       adspark score (every input column + anomaly_score + is_anomaly)
- scores_only: adspark score with output.columns [txn_id] (DataFrame.mapInArrow: ids + features in, ids + score out)
- score_mapinarrow (not run by default): `score` with every column passed through mapInArrow instead of
               the Arrow UDF + JVM rejoin (bench/_adspark_job.py --passing)
- score_bare (not run by default): `score` with output.explain 0 (no top_features column); `score/score_bare`
               is the cost of the reasons (target <= 1.10)
- score_unmonitored (not run by default): `score` with monitor.drift and monitor.report off; `score/score_unmonitored`
               is the cost of the drift check and the run report (target <= 1.10)
- scores_only_udf (not run by default): `scores_only` through the Arrow UDF + JVM rejoin, as before
               mapInArrow (bench/_adspark_job.py --udf)
- identity:    Arrow UDF returning its input's first field over the same 30-column struct
               (the JVM<->Python transfer floor), all columns written
- textbook:    pandas UDF with keras.models.load_model + model.predict per Arrow batch

Prints median/min/max seconds, rows/s, CPU seconds of the JVM and of the Python
processes, and the ratios; writes everything to <workdir>/results.json and the table
into bench/README.md (section `score_vs_copy`; not for --smoke unless --readme).

    python bench/score_vs_copy.py --smoke     # 200,000 rows, 1 round (a few minutes)
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from _results import machine_line, write_section

BENCH = Path(__file__).resolve().parent
N_FEATURES = 30
N_HEAVY = 6  # the last N_HEAVY features are log-normal (heavy-tailed), like amounts
ANOMALY_RATE = 0.005
DATA_VERSION = 1
DEFAULT_VARIANTS = ("noop", "copy", "score", "scores_only", "identity", "textbook")
VARIANTS = (*DEFAULT_VARIANTS, "score_mapinarrow", "scores_only_udf", "score_bare", "score_unmonitored")
TARGETS = {
    "score/copy": ("<=", 1.5, 1.3),
    "score/score_bare": ("<=", 1.10, None),
    "score/score_unmonitored": ("<=", 1.10, None),
    "textbook/score": (">=", 4.0, 6.0),
    "scores_only/copy": ("<=", 0.9, None),
}


# --------------------------------------------------------------------------- data


def _mixing(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((6, N_FEATURES)) / np.sqrt(6)


def _chunk(seed: int, index: int, start: int, n: int, mix: np.ndarray) -> pa.Table:
    rng = np.random.default_rng([seed, index])
    x = rng.standard_normal((n, mix.shape[0])) @ mix + 0.3 * rng.standard_normal((n, N_FEATURES))
    x[:, -N_HEAVY:] = np.exp(0.75 * x[:, -N_HEAVY:])
    bad = np.flatnonzero(rng.random(n) < ANOMALY_RATE)
    cols = rng.integers(0, N_FEATURES, size=(bad.size, 3))
    x[bad[:, None], cols] += rng.choice([-8.0, 8.0], size=cols.shape)
    arrays = {"txn_id": pa.array(np.arange(start, start + n, dtype=np.int64))}
    arrays |= {f"f{i}": pa.array(x[:, i]) for i in range(N_FEATURES)}
    return pa.table(arrays)


def ensure_data(path: Path, rows: int, files: int, seed: int) -> bool:
    """Write the table unless an identical one is cached; True when (re)written."""
    meta = {"rows": rows, "files": files, "seed": seed, "version": DATA_VERSION}
    stamp = path / "_bench_meta.json"
    if stamp.exists() and json.loads(stamp.read_text()) == meta:
        return False
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    mix, bounds = _mixing(seed), np.linspace(0, rows, files + 1).astype(np.int64)
    for i in range(files):
        start, stop = int(bounds[i]), int(bounds[i + 1])
        table = _chunk(seed, i, start, stop - start, mix)
        pq.write_table(table, path / f"part-{i:05d}.parquet", compression="snappy", row_group_size=stop - start)
    stamp.write_text(json.dumps(meta))
    return True


def count_rows(path: Path) -> int:
    return int(ds.dataset(str(path), format="parquet").count_rows())


# --------------------------------------------------------------------------- processes


@dataclass
class Run:
    variant: str
    round: int
    seconds: float
    cpu_jvm_s: float
    cpu_driver_py_s: float
    cpu_workers_py_s: float
    cpu_foreign_s: float  # CPU used by processes outside the run's tree (other users of the machine)
    log: str
    code: str = ""  # digest of the adspark code measured (see snapshot_code)


def busy_cpu_s() -> float:
    """Machine-wide non-idle CPU seconds since boot, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def wait_for_quiet(max_wait: float, cores: float = 0.25, window: float = 1.0) -> float:
    """Wait (up to `max_wait` s) until the machine is nearly idle for `window` s; seconds waited."""
    started = time.perf_counter()
    while time.perf_counter() - started < max_wait:
        before = busy_cpu_s()
        time.sleep(window)
        if busy_cpu_s() - before < cores * window:
            break
    return time.perf_counter() - started


def _proc_snapshot() -> dict[int, tuple[int, str, float]]:
    """pid -> (ppid, comm, cpu seconds) for every process, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[int, tuple[int, str, float]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        comm = raw[raw.index("(") + 1 : raw.rindex(")")]
        rest = raw[raw.rindex(")") + 2 :].split()
        out[int(entry.name)] = (int(rest[1]), comm, (int(rest[11]) + int(rest[12])) / tick)
    return out


class CpuSampler(threading.Thread):
    """Polls the process tree under `root`; keeps each descendant's last-seen CPU time."""

    def __init__(self, root: int, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.root, self.interval = root, interval
        self.seen: dict[int, tuple[str, float]] = {}
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.sample()
            self.done.wait(self.interval)

    def sample(self) -> None:
        snap = _proc_snapshot()
        tree, frontier = {self.root}, [self.root]
        children: dict[int, list[int]] = {}
        for pid, (ppid, _, _) in snap.items():
            children.setdefault(ppid, []).append(pid)
        while frontier:
            for child in children.get(frontier.pop(), []):
                if child not in tree:
                    tree.add(child)
                    frontier.append(child)
        for pid in tree & snap.keys():
            self.seen[pid] = (snap[pid][1], snap[pid][2])

    def tree_total(self) -> float:
        return sum(cpu for _, cpu in self.seen.values())

    def totals(self) -> tuple[float, float, float]:
        """(JVM, driver Python, worker Python) CPU seconds."""
        jvm = sum(cpu for comm, cpu in self.seen.values() if comm == "java")
        driver = self.seen.get(self.root, ("", 0.0))[1]
        workers = sum(cpu for pid, (comm, cpu) in self.seen.items() if pid != self.root and comm.startswith("python"))
        return jvm, driver, workers


CODE_PATH: list[str] = []  # a frozen copy of adspark/ put first on every child's PYTHONPATH


def snapshot_code(workdir: Path) -> str:
    """Copy adspark/ as it is now into the workdir and measure that copy; returns its digest.

    adspark is installed in editable mode and may be edited while the benchmark runs;
    PYTHONPATH comes before the editable finder, so the driver, the Spark Python workers
    and the training runs all import this frozen copy, and every run measures the same code.
    """
    src = BENCH.parent / "adspark"
    dest = workdir / "code"
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(src, dest / "adspark", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    digest = hashlib.sha256()
    for path in sorted((dest / "adspark").rglob("*.py")):
        digest.update(path.relative_to(dest).as_posix().encode() + b"\0" + path.read_bytes())
    CODE_PATH[:] = [str(dest)]
    sys.path.insert(0, str(dest))
    return digest.hexdigest()[:12]


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    if CODE_PATH:
        env["PYTHONPATH"] = os.pathsep.join([*CODE_PATH, *filter(None, [env.get("PYTHONPATH")])])
    env.update(
        PYSPARK_PYTHON=sys.executable,
        PYSPARK_DRIVER_PYTHON=sys.executable,
        TF_CPP_MIN_LOG_LEVEL="2",
        KERAS_BACKEND="tensorflow",
        ADSPARK_SPARK_LOG_LEVEL="ERROR",
    )
    return env


def run_timed(argv: list[str], log: Path) -> tuple[float, tuple[float, float, float, float]]:
    """Run one process to completion: wall seconds and CPU (JVM, driver py, worker py, foreign). Raises on failure."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        busy0 = busy_cpu_s()
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=child_env(), cwd=BENCH.parent)
        sampler = CpuSampler(proc.pid)
        sampler.start()
        code = proc.wait()
        seconds = time.perf_counter() - started
        busy = busy_cpu_s() - busy0
        sampler.done.set()
        sampler.join()
    if code != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-30:])
        raise RuntimeError(f"{' '.join(argv[:4])}... exited {code}; see {log}\n{tail}")
    jvm, driver, workers = sampler.totals()
    return seconds, (jvm, driver, workers, max(0.0, busy - sampler.tree_total()))


# --------------------------------------------------------------------------- preparation


@dataclass
class Paths:
    workdir: Path
    rows: int

    @property
    def data(self) -> Path:
        return self.workdir / f"data-{self.rows}"

    @property
    def model(self) -> Path:
        return self.workdir / f"model-{self.rows}"

    @property
    def keras(self) -> Path:
        return self.workdir / f"textbook-{self.rows}.keras"

    def config(self, name: str) -> Path:
        return self.workdir / f"{name}.yaml"

    def output(self, variant: str) -> Path:
        return self.workdir / "out" / variant

    def log(self, name: str) -> Path:
        return self.workdir / "logs" / f"{name}.log"


def _yaml(data: dict[str, Any]) -> str:
    """JSON is valid YAML; adspark's loader reads it as such."""
    return json.dumps(data, indent=2) + "\n"


def write_configs(paths: Paths, sample_rows: int, epochs: int, spark_conf: dict[str, str]) -> None:
    spark = {"spark.master": "local[2]", **spark_conf}
    base = {"columns": {"id": ["txn_id"]}, "train": {"sample_rows": sample_rows, "epochs": epochs}, "spark": spark}
    paths.config("adspark").write_text(_yaml(base))
    paths.config("adspark_scores_only").write_text(_yaml({**base, "output": {"columns": ["txn_id"]}}))
    paths.config("adspark_unmonitored").write_text(_yaml({**base, "monitor": {"drift": False, "report": False}}))
    paths.config("adspark_bare").write_text(_yaml({**base, "output": {"explain": 0}}))


def model_loads(model_dir: Path) -> bool:
    """Whether the cached artifact still loads with the adspark code checked out now."""
    if not (model_dir / "manifest.json").exists():
        return False
    from adspark.artifact import load_artifact
    from adspark.runtime import build_scorer

    try:
        artifact = load_artifact(str(model_dir))
        build_scorer(artifact.manifest, artifact.files)
    except Exception as err:
        print(f"cached model {model_dir} does not load with the current adspark ({err!r}); retraining")
        return False
    return True


def git_state() -> dict[str, Any]:
    """The commit and the locally modified files, since adspark's code is what is measured."""

    def git(*cmd: str) -> str:
        done = subprocess.run(["git", *cmd], cwd=BENCH.parent, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    return {"commit": git("rev-parse", "--short", "HEAD"), "modified": git("status", "--short", "adspark").splitlines()}


def prepare(paths: Paths, args: argparse.Namespace) -> dict[str, float]:
    """Data, adspark model and Keras model, each built only when missing; returns build seconds."""
    timings: dict[str, float] = {}
    started = time.perf_counter()
    if ensure_data(paths.data, args.rows, args.files, args.seed):
        timings["generate_s"] = round(time.perf_counter() - started, 1)
        print(f"generated {args.rows:,} rows in {args.files} files at {paths.data} ({timings['generate_s']} s)")
        shutil.rmtree(paths.model, ignore_errors=True)
        paths.keras.unlink(missing_ok=True)
    if args.retrain or not model_loads(paths.model):
        shutil.rmtree(paths.model, ignore_errors=True)
    if args.retrain:
        paths.keras.unlink(missing_ok=True)
    if not (paths.model / "manifest.json").exists():
        argv = [sys.executable, "-m", "adspark.cli", "train", "--config", str(paths.config("adspark")),
                "--input", str(paths.data), "--model-dir", str(paths.model)]
        timings["adspark_train_s"] = round(run_timed(argv, paths.log("train-adspark"))[0], 1)
        print(f"adspark train: {timings['adspark_train_s']} s (whole process; sample {args.sample_rows:,} rows, "
              f"{args.epochs} epochs)")
    if not paths.keras.exists():
        argv = [sys.executable, str(BENCH / "_textbook_job.py"), "train", "--input", str(paths.data),
                "--model", str(paths.keras), "--sample-rows", str(args.sample_rows), "--epochs", str(args.epochs)]
        timings["textbook_train_s"] = round(run_timed(argv, paths.log("train-textbook"))[0], 1)
        print(f"textbook train: {timings['textbook_train_s']} s")
    return timings


def commands(paths: Paths, conf: list[str]) -> dict[str, list[str]]:
    py, data = sys.executable, str(paths.data)
    confs = [a for kv in conf for a in ("--conf", kv)]

    def adspark(config: str, variant: str, entry: tuple[str, ...] = ("-m", "adspark.cli")) -> list[str]:
        return [py, *entry, "score", "--config", str(paths.config(config)), "--model-dir",
                str(paths.model), "--input", data, "--output", str(paths.output(variant))]

    return {
        "noop": [py, str(BENCH / "_copy_job.py"), "noop", *confs],
        "copy": [py, str(BENCH / "_copy_job.py"), "copy", "--input", data, "--output", str(paths.output("copy")),
                 *confs],
        "score": adspark("adspark", "score"),
        "scores_only": adspark("adspark_scores_only", "scores_only"),
        "score_bare": adspark("adspark_bare", "score_bare"),
        "score_unmonitored": adspark("adspark_unmonitored", "score_unmonitored"),
        "score_mapinarrow": adspark("adspark", "score_mapinarrow",
                                    (str(BENCH / "_adspark_job.py"), "--passing")),
        "scores_only_udf": adspark("adspark_scores_only", "scores_only_udf",
                                   (str(BENCH / "_adspark_job.py"), "--udf")),
        "identity": [py, str(BENCH / "_identity_job.py"), "--input", data, "--output", str(paths.output("identity")),
                     *confs],
        "textbook": [py, str(BENCH / "_textbook_job.py"), "score", "--input", data, "--model", str(paths.keras),
                     "--output", str(paths.output("textbook")), *confs],
    }


# --------------------------------------------------------------------------- measuring


def measure(paths: Paths, variants: list[str], repeats: int, conf: list[str], quiet_wait: float,
            first_round: int = 0, code: str = "") -> list[Run]:
    argv = commands(paths, conf)
    runs: list[Run] = []
    for r in range(first_round, first_round + repeats):
        order = variants[r % len(variants) :] + variants[: r % len(variants)]  # rotate: no fixed position
        for variant in order:
            shutil.rmtree(paths.output(variant), ignore_errors=True)
            waited = wait_for_quiet(quiet_wait) if quiet_wait > 0 else 0.0
            log = paths.log(f"{variant}-{r}")
            seconds, cpu = run_timed(argv[variant], log)
            runs.append(Run(variant, r, round(seconds, 2), *(round(c, 1) for c in cpu), str(log), code))
            jvm, driver, workers, foreign = cpu
            print(f"  round {r + 1 - first_round}/{repeats} {variant:<16} {seconds:7.1f} s  (cpu: jvm {jvm:.0f} s, "
                  f"driver py {driver:.0f} s, worker py {workers:.0f} s; other processes {foreign:.0f} s; "
                  f"waited {waited:.0f} s for a quiet machine)", flush=True)
    return runs


def check_outputs(paths: Paths, variants: list[str], rows: int) -> dict[str, int]:
    counts = {v: count_rows(paths.output(v)) for v in variants if v != "noop"}
    wrong = {v: n for v, n in counts.items() if n != rows}
    if wrong:
        raise RuntimeError(f"outputs with the wrong row count (expected {rows}): {wrong}")
    return counts


@dataclass
class Summary:
    variant: str
    runs: int
    median_s: float
    min_s: float
    max_s: float
    rows_per_s: float
    cpu_jvm_s: float
    cpu_driver_py_s: float
    cpu_workers_py_s: float
    cpu_foreign_s: float
    cpu_total_s: float  # the run's own CPU: JVM + driver Python + worker Python
    seconds: list[float] = field(default_factory=list)


def summarize(runs: list[Run], variants: list[str], rows: int) -> dict[str, Summary]:
    out: dict[str, Summary] = {}
    for v in variants:
        mine = [r for r in runs if r.variant == v]
        secs = [r.seconds for r in mine]
        med = statistics.median(secs)

        def cpu(attr: str, mine: list[Run] = mine) -> float:
            return round(statistics.median(getattr(r, attr) for r in mine), 1)

        out[v] = Summary(v, len(secs), round(med, 2), min(secs), max(secs), round(rows / med) if v != "noop" else 0,
                         cpu("cpu_jvm_s"), cpu("cpu_driver_py_s"), cpu("cpu_workers_py_s"), cpu("cpu_foreign_s"),
                         round(statistics.median(r.cpu_jvm_s + r.cpu_driver_py_s + r.cpu_workers_py_s
                                                 for r in mine), 1),
                         secs)
    return out


def _meets(value: float, op: str, bound: float) -> bool:
    return value <= bound if op == "<=" else value >= bound


def ratios(s: dict[str, Summary]) -> dict[str, dict[str, Any]]:
    pairs = {"score/copy": ("score", "copy"), "textbook/score": ("textbook", "score"),
             "scores_only/copy": ("scores_only", "copy"), "identity/copy": ("identity", "copy"),
             "score/identity": ("score", "identity"), "score_mapinarrow/score": ("score_mapinarrow", "score"),
             "score_mapinarrow/copy": ("score_mapinarrow", "copy"),
             "scores_only/scores_only_udf": ("scores_only", "scores_only_udf"),
             "score/score_bare": ("score", "score_bare"),
             "score/score_unmonitored": ("score", "score_unmonitored")}
    startup = s["noop"].median_s if "noop" in s else 0.0
    out: dict[str, dict[str, Any]] = {}
    for name, (a, b) in pairs.items():
        if a not in s or b not in s:
            continue
        value = s[a].median_s / s[b].median_s
        net = (s[a].median_s - startup) / max(s[b].median_s - startup, 1e-9)
        cpu = s[a].cpu_total_s / max(s[b].cpu_total_s, 1e-9)
        entry: dict[str, Any] = {"ratio": round(value, 3), "net_of_startup": round(net, 3) if startup else None,
                                 "min_ratio": round(s[a].min_s / s[b].min_s, 3), "cpu_ratio": round(cpu, 3)}
        if name in TARGETS:
            op, target, stretch = TARGETS[name]
            entry |= {"target": f"{op} {target}", "meets_target": _meets(value, op, target)}
            if stretch is not None:
                entry |= {"stretch": f"{op} {stretch}", "meets_stretch": _meets(value, op, stretch)}
        out[name] = entry
    return out


# --------------------------------------------------------------------------- reporting


def print_table(summary: dict[str, Summary], rat: dict[str, dict[str, Any]], rows: int) -> None:
    print(f"\nwall seconds per whole process, {rows:,} rows, local[2] (cpu = median CPU seconds: the run's JVM,\n"
          "its driver Python, its Python workers, and other processes on the machine during the run)")
    head = f"{'variant':<16} {'runs':>4} {'median':>8} {'min':>8} {'max':>8} {'rows/s':>10} " \
           f"{'cpu jvm':>8} {'cpu drv py':>10} {'cpu wrk py':>10} {'cpu total':>9} {'cpu other':>9}"
    print(head)
    print("-" * len(head))
    for s in summary.values():
        rate = f"{s.rows_per_s:,.0f}" if s.rows_per_s else "-"
        print(f"{s.variant:<16} {s.runs:>4} {s.median_s:>8.1f} {s.min_s:>8.1f} {s.max_s:>8.1f} {rate:>10} "
              f"{s.cpu_jvm_s:>8.1f} {s.cpu_driver_py_s:>10.1f} {s.cpu_workers_py_s:>10.1f} {s.cpu_total_s:>9.1f} "
              f"{s.cpu_foreign_s:>9.1f}")
    print("\nratios of medians (net = both sides minus the noop start-up median; min = ratio of the fastest runs;\n"
          "cpu = ratio of the runs' own CPU seconds; min and cpu are less sensitive to other load on the machine;\n"
          "the targets are checked on the ratio of medians)")
    for name, e in rat.items():
        verdict = ""
        if "target" in e:
            verdict = f"target {e['target']}: {'PASS' if e['meets_target'] else 'FAIL'}"
            if "stretch" in e:
                verdict += f", stretch {e['stretch']}: {'PASS' if e['meets_stretch'] else 'FAIL'}"
        net = f"net {e['net_of_startup']:.2f}" if e["net_of_startup"] is not None else ""
        print(f"  {name:<27} {e['ratio']:6.2f}   {net:<10} min {e['min_ratio']:5.2f}   cpu {e['cpu_ratio']:5.2f}   "
              f"{verdict}")


def machine() -> dict[str, Any]:
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    versions = {}
    for mod in ("pyspark", "pyarrow", "numpy", "pandas", "onnxruntime", "keras", "tensorflow"):
        try:
            from importlib import metadata

            versions[mod] = metadata.version(mod)
        except Exception:
            versions[mod] = "?"
    mem_kb = next(int(ln.split()[1]) for ln in Path("/proc/meminfo").read_text().splitlines()
                  if ln.startswith("MemTotal"))
    return {"cpus": os.cpu_count(), "cpu_model": cpu, "mem_gib": round(mem_kb / 2**20, 1),
            "python": platform.python_version(), "platform": platform.platform(), **versions}


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=2_000_000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--workdir", default="/tmp/adspark-bench")
    p.add_argument("--files", type=int, default=12, help="Parquet files in the input table (default 12)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--sample-rows", type=int, default=50_000, help="training sample (both models)")
    p.add_argument("--epochs", type=int, default=5, help="training epochs (both models)")
    p.add_argument("--variants", default=",".join(DEFAULT_VARIANTS),
                   help=f"comma-separated subset of {','.join(VARIANTS)}")
    p.add_argument("--retrain", action="store_true", help="retrain both models even if cached")
    p.add_argument("--append", action="store_true",
                   help="add this session's runs to those already in <workdir>/results.json (same --rows)")
    p.add_argument("--report-only", action="store_true", help="only print the table from <workdir>/results.json")
    p.add_argument("--live-code", action="store_true",
                   help="import adspark from the working tree instead of a frozen copy taken at start")
    p.add_argument("--quiet-wait", type=float, default=15.0,
                   help="before each run, wait up to this many seconds for the machine to be idle (0: never)")
    p.add_argument("--conf", action="append", default=[],
                   help="extra Spark setting key=value for every variant (repeatable); changes the adspark config too")
    p.add_argument("--smoke", action="store_true", help="200,000 rows, 1 round, no quiet wait (a few minutes)")
    p.add_argument("--readme", action=argparse.BooleanOptionalAction, default=None,
                   help="write the table into bench/README.md (default: yes, except with --smoke)")
    args = p.parse_args()
    if args.smoke:
        args.rows, args.repeats, args.quiet_wait = 200_000, 1, 0.0
    return args


def markdown(summary: dict[str, Summary], rat: dict[str, dict[str, Any]], args: argparse.Namespace,
             machine: str) -> str:
    """The README table: one row per variant, then the ratios against their targets."""
    flags = " --smoke" if args.smoke else ""
    lines = [f"`python bench/score_vs_copy.py{flags}`: {args.rows:,} rows x {N_FEATURES} doubles + id, local[2], "
             f"whole processes, {args.repeats} round(s). {machine}.", "",
             "| variant | runs | median s | min s | rows/s | CPU s (JVM / driver py / workers py) | cpu other s |",
             "|---|---:|---:|---:|---:|---|---:|"]
    for v in summary.values():
        rate = f"{v.rows_per_s:,.0f}" if v.rows_per_s else "-"
        lines.append(f"| {v.variant} | {v.runs} | {v.median_s:.1f} | {v.min_s:.1f} | {rate} | "
                     f"{v.cpu_jvm_s:.0f} / {v.cpu_driver_py_s:.0f} / {v.cpu_workers_py_s:.0f} | "
                     f"{v.cpu_foreign_s:.0f} |")
    lines += ["", "| ratio | of medians | net of start-up | of minima | of CPU | target |",
              "|---|---:|---:|---:|---:|---|"]
    for name, e in rat.items():
        net = f"{e['net_of_startup']:.2f}" if e["net_of_startup"] is not None else "-"
        target = ""
        if "target" in e:
            target = f"{e['target']}: {'met' if e['meets_target'] else 'not met'}"
        lines.append(f"| {name} | {e['ratio']:.2f} | {net} | {e['min_ratio']:.2f} | {e['cpu_ratio']:.2f} | {target} |")
    return "\n".join(lines)


def previous_runs(path: Path, rows: int) -> list[Run]:
    """Runs recorded in an earlier results.json for the same table size (for --append / --report-only)."""
    if not path.exists():
        return []
    old = json.loads(path.read_text())
    if old.get("args", {}).get("rows") != rows:
        return []
    return [Run(**r) for r in old.get("runs", [])]


def main() -> int:
    args = _args()
    variants = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
    paths = Paths(Path(args.workdir).resolve(), args.rows)
    out = paths.workdir / "results.json"
    earlier = previous_runs(out, args.rows) if (args.append or args.report_only) else []
    prep: dict[str, float] = {}
    runs: list[Run] = []
    counts: dict[str, int] = {}
    code, git = "", {}
    started = machine_line()
    if not args.report_only:
        paths.workdir.mkdir(parents=True, exist_ok=True)
        code = "live" if args.live_code else snapshot_code(paths.workdir)
        git = git_state()  # when the code was taken, not after the runs
        from _spark import parse_conf  # after the snapshot: it imports adspark

        write_configs(paths, args.sample_rows, args.epochs, parse_conf(args.conf))
        prep = prepare(paths, args)
        print(f"measuring {', '.join(variants)} x {args.repeats} round(s), round-robin; adspark code {code}",
              flush=True)
        first = 1 + max((r.round for r in earlier), default=-1)
        runs = measure(paths, variants, args.repeats, args.conf, args.quiet_wait, first, code)
        counts = check_outputs(paths, variants, args.rows)
    runs = earlier + runs
    codes = sorted({r.code for r in runs})
    if len(codes) > 1:
        print(f"note: these runs measured {len(codes)} different versions of the adspark code: {codes}")
    variants = [v for v in variants if any(r.variant == v for r in runs)]
    summary = summarize(runs, variants, args.rows)
    rat = ratios(summary)
    print_table(summary, rat, args.rows)
    if args.report_only:
        return 0
    result = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "args": vars(args),
        "machine": machine(),
        "git": git,
        "code_digest": code,
        "prepare": prep,
        "summary": {k: asdict(v) for k, v in summary.items()},
        "ratios": rat,
        "output_rows": counts,
        "runs": [asdict(r) for r in runs],
    }
    out.write_text(json.dumps(result, indent=2))
    print(f"\nresults written to {out}")
    if args.readme if args.readme is not None else not args.smoke:
        write_section("score_vs_copy", markdown(summary, rat, args, started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
