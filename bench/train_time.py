"""Training time of the dense autoencoder with the default settings.

    python bench/train_time.py [--workdir /tmp/adspark-bench] [--rows 2000000] [--repeats 2]
    python bench/train_time.py --smoke      # the 200,000-row table, 1 run

Uses (or writes) the same table as `bench/score_vs_copy.py`: `rows` x 30 float64
features plus an int64 `txn_id`. Each repeat runs `adspark train` as its own process
with nothing in the config but the id column, the master (`local[2]`) and the model
directory, so every training setting is the default (200,000-row sample, 30 epochs,
batch 256, early stopping). Prints, per run and as medians:
- `fit`: `Detector.fit` on the sample, from the artifact's manifest (`training.seconds`:
  preprocessing fit, TensorFlow import and network build, the Keras epochs, the ONNX
  export, scoring the sample and fitting the threshold);
- `epochs`: the Keras epochs alone (first to last epoch log line), and how many ran;
- `process`: the whole `adspark train` process (JVM and Spark start, the sampling pass
  over the table, the fit, writing the artifact).
The target is fit < 60 s on 2 cores. Writes the table into bench/README.md (section
`train_time`; not for --smoke unless --readme).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import sys
from datetime import datetime
from pathlib import Path

from _results import machine_line, write_section
from score_vs_copy import Paths, ensure_data, run_timed

EPOCH_LINE = re.compile(r"^(\S+ \S+) INFO adspark\.train: autoencoder\[0\] epoch (\d+)/\d+")


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/adspark-bench"))
    p.add_argument("--rows", type=int, default=2_000_000)
    p.add_argument("--files", type=int, default=12)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--smoke", action="store_true", help="the 200,000-row table, 1 run")
    p.add_argument("--readme", action=argparse.BooleanOptionalAction, default=None,
                   help="write the table into bench/README.md (default: yes, except with --smoke)")
    args = p.parse_args()
    if args.smoke:
        args.rows, args.repeats = 200_000, 1
    return args


def _epoch_span(log: Path) -> tuple[float, int]:
    """Seconds from the first to the last epoch line (plus one epoch's mean), and the epoch count."""
    stamps = [(datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S,%f"), int(m[2]))
              for m in map(EPOCH_LINE.match, log.read_text().splitlines()) if m]
    if len(stamps) < 2:
        return float("nan"), len(stamps)
    span = (stamps[-1][0] - stamps[0][0]).total_seconds()
    return span * len(stamps) / (len(stamps) - 1), len(stamps)


def one_run(workdir: Path, data: Path, index: int) -> dict[str, float]:
    model = workdir / f"train-time-model-{index}"
    shutil.rmtree(model, ignore_errors=True)
    config = workdir / "train_time.yaml"
    config.write_text(json.dumps({"input": {"path": str(data)}, "model_dir": str(model),
                                  "columns": {"id": ["txn_id"]}, "spark": {"spark.master": "local[2]"}}))
    log = workdir / "logs" / f"train-time-{index}.log"
    wall, _ = run_timed([sys.executable, "-m", "adspark.cli", "train", "--config", str(config)], log)
    training = json.loads((model / "manifest.json").read_text())["training"]
    epochs_s, epochs = _epoch_span(log)
    return {"process": wall, "fit": float(training["seconds"]), "epochs": epochs_s, "epochs_run": epochs,
            "sample_rows": training["sample_rows"]}


def main() -> int:
    args = _args()
    machine = machine_line()
    data = Paths(args.workdir, args.rows).data
    if ensure_data(data, args.rows, args.files, args.seed):
        print(f"wrote {args.rows:,} rows to {data}")
    runs = []
    for i in range(args.repeats):
        run = one_run(args.workdir, data, i)
        runs.append(run)
        print(f"run {i + 1}: sample {run['sample_rows']:,} rows x 30 features, fit {run['fit']:.1f} s "
              f"(Keras epochs {run['epochs']:.1f} s, {run['epochs_run']} run), whole process {run['process']:.1f} s")
    med = {k: statistics.median(r[k] for r in runs) for k in ("fit", "epochs", "process")}
    verdict = "PASS" if med["fit"] < 60 else "FAIL"
    print(f"median of {len(runs)}: fit {med['fit']:.1f} s (target < 60 s: {verdict}), "
          f"Keras epochs {med['epochs']:.1f} s, whole process {med['process']:.1f} s")
    if args.readme if args.readme is not None else not args.smoke:
        lines = [f"`python bench/train_time.py{' --smoke' if args.smoke else ''}`: `adspark train` with every "
                 f"training setting at its default, on the {args.rows:,}-row table, {len(runs)} run(s). {machine}.",
                 "", "| run | sample rows | fit s | Keras epochs s (epochs run) | whole process s |",
                 "|---|---:|---:|---:|---:|"]
        lines += [f"| {i + 1} | {r['sample_rows']:,} | {r['fit']:.1f} | {r['epochs']:.1f} ({r['epochs_run']}) | "
                  f"{r['process']:.1f} |" for i, r in enumerate(runs)]
        lines.append(f"| **median** | | **{med['fit']:.1f}** (target < 60: {'met' if med['fit'] < 60 else 'not met'}) "
                     f"| {med['epochs']:.1f} | {med['process']:.1f} |")
        write_section("train_time", "\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
