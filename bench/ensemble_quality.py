"""The ensemble kind against its members, on the shared labelled tables (defaults only).

    python bench/ensemble_quality.py [--tables wilt,wdbc,...] [--seeds 0,1,2] [--members autoencoder,gan]

For each table and seed, one `model.kind: ensemble` detector is trained with the defaults (label column
excluded, the whole table as the training sample, `train.seed` = the seed), and the table is scored by
the ensemble and by each member (the members' raw scores come from the same fitted artifact, so they are
exactly what `model.kind: <member>` trains with the same config). Prints ROC-AUC and PR-AUC per table
(mean over seeds) and the mean over tables; labels are used only for the metrics.

Tables: every `*.parquet` in `$ADSPARK_DATASETS` or `../shared/datasets` except the ECG series;
`mnist_5k` uses the one-class protocol (digit 0 normal, 5% other digits drawn with the seed).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

LABELS = ("label", "anomaly", "malignant")


def datasets_dir() -> Path:
    return Path(os.environ.get("ADSPARK_DATASETS", Path(__file__).resolve().parents[2] / "shared" / "datasets"))


def load(name: str, seed: int) -> tuple[pa.Table, np.ndarray]:
    table = pq.read_table(datasets_dir() / f"{name}.parquet")
    label = next(c for c in LABELS if c in table.column_names)
    y = table.column(label).to_numpy()
    table = table.drop_columns([label])
    if name == "mnist_5k":  # one class normal, a few % of the others as anomalies
        rng = np.random.default_rng(seed)
        normal, other = np.flatnonzero(y == 0), np.flatnonzero(y != 0)
        bad = rng.choice(other, round(0.05 * len(normal) / 0.95), replace=False)
        rows = np.sort(np.r_[normal, bad])
        return table.take(pa.array(rows)), (y[rows] != 0).astype(int)
    return table, (y != 0).astype(int)


def evaluate(name: str, seed: int, members: list[str]) -> dict[str, tuple[float, float]]:
    from sklearn.metrics import average_precision_score, roc_auc_score

    from adspark.config import parse_config
    from adspark.models import make_detector

    table, y = load(name, seed)
    table = pa.table({c: table.column(c).cast(pa.float64()) for c in table.column_names})
    cfg = parse_config({"model": {"kind": "ensemble", "members": members},
                        "train": {"seed": seed, "sample_rows": max(10, table.num_rows)}})  # fmt: skip
    det = make_detector(cfg, table.column_names, []).fit(table)
    features = det.preprocessor.transform([table.column(c) for c in det.preprocessor.columns])
    raw = det.scorer_.member_scores(features)
    scores = {kind: raw[:, i] for i, kind in enumerate(members)} | {"ensemble": det.decision_function(table)}
    return {k: (roc_auc_score(y, s), average_precision_score(y, s)) for k, s in scores.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    names = sorted(f.stem for f in datasets_dir().glob("*.parquet") if f.stem != "mitdb_ecg")
    p.add_argument("--tables", default=",".join(names), help="comma-separated table names")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    from adspark.config import DEFAULT_MEMBERS

    p.add_argument("--members", default=",".join(DEFAULT_MEMBERS), help="ensemble members (default: the config's)")
    args = p.parse_args(argv)
    members = args.members.split(",")
    methods = [*members, "ensemble"]
    rows: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for name in args.tables.split(","):
        rows[name] = {m: [] for m in methods}
        for seed in (int(s) for s in args.seeds.split(",")):
            start = time.perf_counter()
            result = evaluate(name, seed, members)
            for m in methods:
                rows[name][m].append(result[m])
            print(f"  {name} seed {seed}: " + " ".join(f"{m}={result[m][0]:.3f}" for m in methods)
                  + f" ({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)  # fmt: skip
    head = "| table | " + " | ".join(f"{m} ROC | {m} PR" for m in methods) + " |"
    print(head)
    print("|---" * (1 + 2 * len(methods)) + "|")
    means: dict[str, list[tuple[float, float]]] = {m: [] for m in methods}
    for name, per in rows.items():
        cells = []
        for m in methods:
            roc, pr = np.mean(per[m], axis=0)
            means[m].append((roc, pr))
            cells += [f"{roc:.3f}", f"{pr:.3f}"]
        print(f"| {name} | " + " | ".join(cells) + " |")
    cells = [f"**{v:.3f}**" for m in methods for v in np.mean(means[m], axis=0)]
    print("| mean | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
