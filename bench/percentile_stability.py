"""How far held-out rows' anomaly_percentile moves when the model is retrained on a fresh sample.

    python bench/percentile_stability.py [--table pairs|transactions] [--rows 4000] [--epochs 10] [--held-out 20000]
                                        [--ensemble 1]

Trains two autoencoders (same config and seed) on two independent samples of one
distribution, scores a third, held-out sample with each, and prints the mean
absolute difference of the two percentiles, plus the same figure with one network
and two training-score summaries (the frozen distribution's own share of the
movement). Tables: `pairs` (x1, x2 = z1 + noise; x3, x4 = z2 + noise) and
`transactions` (tests/conftest.py's make_table, 0.5% outliers). Driver only, no Spark.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def pairs(n: int, seed: int) -> tuple[pa.Table, list[str], list[str]]:
    r = np.random.default_rng(seed)
    z1, z2 = r.normal(size=n), r.normal(size=n)
    cols = {"x1": z1, "x2": z1, "x3": z2, "x4": z2}
    return pa.table({k: v + 0.3 * r.normal(size=n) for k, v in cols.items()}), list(cols), []


def transactions(n: int, seed: int) -> tuple[pa.Table, list[str], list[str]]:
    from tests.conftest import make_table

    df = make_table(n, seed=seed, outliers=n // 200)
    numeric = ["amount", "a", "b", "count"]
    return pa.table({c: df[c].astype("float64") for c in numeric} | {"merchant": df["merchant"]}), numeric, ["merchant"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--table", choices=["pairs", "transactions"], default="pairs")
    p.add_argument("--rows", type=int, default=4000, help="training sample rows (each model)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--held-out", type=int, default=20_000)
    p.add_argument("--ensemble", type=int, default=1, help="model.ensemble: autoencoders averaged per model")
    args = p.parse_args()

    from adspark.config import parse_config
    from adspark.decisions import ScoreSummary
    from adspark.models import make_detector
    from adspark.runtime import build_scorer

    make = pairs if args.table == "pairs" else transactions
    cfg = parse_config({"train": {"epochs": args.epochs, "seed": 0, "patience": 3, "batch_size": 64,
                                  "sample_rows": args.rows}, "model": {"ensemble": args.ensemble}})
    held, numeric, categorical = make(args.held_out, 3)
    start = time.perf_counter()
    percentiles, scorers = [], []
    for seed in (1, 2):
        table = make(args.rows, seed)[0]
        det = make_detector(cfg, numeric, categorical).fit(table)
        manifest = det.manifest_()
        scorer = build_scorer(manifest, det.files_)
        scores = scorer.score_arrays([held.column(c) for c in numeric + categorical])
        percentiles.append(ScoreSummary.from_state(manifest["score_summary"]).percentile(scores))
        scorers.append((scorer, table))
    retrain = float(np.mean(np.abs(percentiles[0] - percentiles[1])))
    scorer, _ = scorers[0]
    own = [ScoreSummary.from_scores(scorer.score_arrays([t.column(c) for c in numeric + categorical]))
           for _, t in scorers]
    held_scores = scorer.score_arrays([held.column(c) for c in numeric + categorical])
    summary_only = float(np.mean(np.abs(own[0].percentile(held_scores) - own[1].percentile(held_scores))))
    print(f"table={args.table} rows={args.rows} epochs={args.epochs} ensemble={args.ensemble} "
          f"({time.perf_counter() - start:.0f} s)")
    print(f"mean |percentile change|, retrained network + summary: {retrain:.4f}")
    print(f"mean |percentile change|, one network, two summaries:  {summary_only:.4f}")


if __name__ == "__main__":
    main()
