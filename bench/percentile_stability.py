"""How far held-out rows' anomaly_percentile moves when the model is retrained on a fresh sample.

    python bench/percentile_stability.py [--tables pairs,transactions] [--rows 20000] [--held-out 20000]
                                        [--draws 2] [--epochs N] [--ensemble 1] [--write-readme]
    python bench/percentile_stability.py --smoke     # pairs, 4,000 rows, one draw (< 1 min)

For each table and draw, trains two autoencoders (the shipped defaults, same seed) on two
independent samples of one distribution, scores a third, held-out sample with each, and
reports the mean absolute difference of the two percentiles, plus the same figure with one
network and two training-score summaries (the frozen distribution's own share of the
movement). Tables: `pairs` (x1, x2 = z1 + noise; x3, x4 = z2 + noise) and `transactions`
(tests/conftest.py's make_table, 0.5% outliers). Driver only, no Spark.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import machine_line, write_section


def pairs(n: int, seed: int) -> tuple[pa.Table, list[str], list[str]]:
    from tests.conftest import PAIRS, pairs_table

    return pairs_table(n, seed), list(PAIRS), []


def transactions(n: int, seed: int) -> tuple[pa.Table, list[str], list[str]]:
    from tests.conftest import make_table

    df = make_table(n, seed=seed, outliers=n // 200)
    numeric = ["amount", "a", "b", "count"]
    return pa.table({c: df[c].astype("float64") for c in numeric} | {"merchant": df["merchant"]}), numeric, ["merchant"]


def movement(table: str, rows: int, held_out: int, draw: int, cfg: Any) -> tuple[float, float]:
    """(retrained network + summary, one network with two summaries): mean |percentile change| on held-out rows."""
    from adspark.decisions import ScoreSummary
    from adspark.models import make_detector
    from adspark.runtime import build_scorer

    make = pairs if table == "pairs" else transactions
    held, numeric, categorical = make(held_out, 3 * draw + 3)
    percentiles, scorers = [], []
    for seed in (3 * draw + 1, 3 * draw + 2):
        sample = make(rows, seed)[0]
        det = make_detector(cfg, numeric, categorical).fit(sample)
        manifest = det.manifest_()
        scorer = build_scorer(manifest, det.files_)
        scores = scorer.score_arrays([held.column(c) for c in numeric + categorical])
        percentiles.append(ScoreSummary.from_state(manifest["score_summary"]).percentile(scores))
        scorers.append((scorer, sample))
    retrain = float(np.mean(np.abs(percentiles[0] - percentiles[1])))
    scorer, _ = scorers[0]
    own = [ScoreSummary.from_scores(scorer.score_arrays([t.column(c) for c in numeric + categorical]))
           for _, t in scorers]
    held_scores = scorer.score_arrays([held.column(c) for c in numeric + categorical])
    summary_only = float(np.mean(np.abs(own[0].percentile(held_scores) - own[1].percentile(held_scores))))
    return retrain, summary_only


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tables", default="pairs,transactions", help="comma-separated: pairs, transactions")
    p.add_argument("--rows", type=int, default=20_000, help="training sample rows (each model)")
    p.add_argument("--held-out", type=int, default=20_000)
    p.add_argument("--draws", type=int, default=2, help="independent (sample, sample, held-out) draws per table")
    p.add_argument("--epochs", type=int, default=None, help="train.epochs (default: the shipped one)")
    p.add_argument("--ensemble", type=int, default=1, help="model.ensemble: autoencoders averaged per model")
    p.add_argument("--smoke", action="store_true", help="pairs, 4,000 rows, one draw")
    p.add_argument("--write-readme", action="store_true", help="replace the table in bench/README.md")
    args = p.parse_args()
    if args.smoke:
        args.tables, args.rows, args.held_out, args.draws = "pairs", 4000, 5000, 1

    from adspark.config import parse_config

    epochs = {} if args.epochs is None else {"epochs": args.epochs}
    cfg = parse_config({"train": {"seed": 0, "sample_rows": args.rows} | epochs, "model": {"ensemble": args.ensemble}})
    lines = ["| table | draw | retrained network + summary | one network, two summaries |", "|---|---|---|---|"]
    for table in args.tables.split(","):
        if table not in ("pairs", "transactions"):
            raise SystemExit(f"unknown table {table!r}: pairs or transactions")
        for draw in range(args.draws):
            start = time.perf_counter()
            retrain, summary_only = movement(table, args.rows, args.held_out, draw, cfg)
            print(f"{table} draw {draw}: retrained {retrain:.4f}, one network {summary_only:.4f} "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
            lines.append(f"| {table} | {draw} | {retrain:.4f} | {summary_only:.4f} |")
    command = "python bench/percentile_stability.py " + " ".join(sys.argv[1:])
    body = (f"`{command}`: {args.rows:,} training rows per model, {args.held_out:,} held-out rows, "
            f"train.epochs {cfg.train.epochs}, model.ensemble {args.ensemble}; {machine_line()}.\n\n"
            "Mean absolute change of held-out rows' anomaly_percentile.\n\n" + "\n".join(lines))
    print(body)
    if args.write_readme:
        write_section("percentile-stability", body)


if __name__ == "__main__":
    main()
