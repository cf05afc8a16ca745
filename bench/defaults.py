"""Choosing the autoencoder's defaults on the real detector, with a leave-one-table-out check.

    python bench/defaults.py [--candidates defaults,ensemble_3] [--datasets wilt,glass] [--seeds 0,1,2] [--save F]
    python bench/defaults.py --report F [F ...] [--write-readme]   # the tables again, from saved runs
    python bench/defaults.py --report F [F ...] --candidates a,b --section NAME --write-readme
                                     # only those candidates, into the README block NAME
    python bench/defaults.py --report F [F ...] --candidates a,b --baseline a ...   # beside `a`, not `defaults`

Each candidate is a set of config overrides (or a rule for the default layer sizes, or other constants
for the `auto` and `trimmed` error units) applied to the shipped defaults; `defaults` is the shipped configuration
itself. Every candidate is trained and scored
like bench/quality.py's `autoencoder` column (the Keras detector, exported to ONNX, scored by the
executors' onnxruntime scorer), on every shared table of ../shared/datasets, every seed; scikit-learn's
IsolationForest runs beside it on the same matrix. Labels only score. bench/ablation.py's PyTorch
replica explores a larger grid faster, but its differences of a few hundredths did not carry over to
the real detector, so defaults are chosen here.

Leave-one-table-out: for each table T, the candidate at or above IsolationForest's ROC-AUC on the most
of the other tables (seeds averaged), the best mean ROC-AUC there among those, is "the default chosen
without T"; the report gives its ROC-AUC and PR-AUC on T next to IsolationForest's. Wins come first
because the quality target is per table: a default that gains a hundredth of mean by losing a table is
not better.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import quality
from ablation import Row, leave_one_out, means

SHARED = ("wilt", "wdbc", "breastw", "ionosphere", "glass", "pima", "pendigits", "mnist")


def _layers(code_divisor: int) -> Callable[[int], list[int]]:
    """default_hidden with the code layer at d // code_divisor units (2 to 32)."""
    return lambda d: [int(min(128, max(8, d))), int(max(2, min(32, d // code_divisor)))]


AUTO = {"typical_error": "auto"}
RMS = {"typical_error": "rms"}
MSE = {"loss": "mse"}  # one network trained on the squared error: the default before mse+welsch


def _on_mse(override: dict[str, Any]) -> dict[str, Any]:
    """The override on one network trained on the squared error, the default these candidates were measured on."""
    return {**override, "model": {**MSE, **override.get("model", {})}}


def _on_rms(override: dict[str, Any]) -> dict[str, Any]:
    """The override on the root-mean-square error unit (and the squared-error loss), the default these
    candidates were measured against."""
    return _on_mse({**override, "model": {**RMS, **override.get("model", {})}})


# name -> (config overrides, default layer sizes rule or None for the shipped one)
CANDIDATES: dict[str, tuple[dict[str, Any], Callable[[int], list[int]] | None]] = {
    # the code layer at d // 2, a knee of 1.5 on the rarely-moving features, unit trimmed, loss mse+welsch
    "defaults": ({}, None),
    "loss_mse": ({"model": MSE}, None),  # the default before mse+welsch: one network, the squared error
    "rms_error": (_on_rms({}), None),  # the unit before `trimmed`: the root mean square over the kept rows
    "squared": (_on_rms({"model": {"error_knee": None}}), None),  # squared errors throughout (the earlier default)
    "knee_rare_0.75": (_on_rms({"model": {"error_knee": 0.75}}), None),
    "knee_rare_1": (_on_rms({"model": {"error_knee": 1.0}}), None),
    "knee_rare_2": (_on_rms({"model": {"error_knee": 2.0}}), None),
    "knee_rare_3": (_on_rms({"model": {"error_knee": 3.0}}), None),
    "knee_all_1.5": (_on_rms({"model": {"knee_features": "all"}}), None),
    "knee_all_2": (_on_rms({"model": {"error_knee": 2.0, "knee_features": "all"}}), None),
    "ensemble_3": (_on_rms({"model": {"ensemble": 3}}), None),
    "min_steps_60": (_on_rms({"train": {"min_steps": 60}}), None),
    "min_steps_120": (_on_rms({"train": {"min_steps": 120}}), None),
    "act_elu": (_on_rms({"model": {"activation": "elu"}}), None),
    "act_tanh": (_on_rms({"model": {"activation": "tanh"}}), None),
    "act_leaky_relu": (_on_rms({"model": {"activation": "leaky_relu"}}), None),
    "epochs_10": (_on_rms({"train": {"epochs": 10}}), None),  # fewer passes: a small table's net stays nearer its start
    "epochs_15": (_on_rms({"train": {"epochs": 15}}), None),
    "epochs_20": (_on_rms({"train": {"epochs": 20}}), None),
    "trim_0.1": (_on_rms({"train": {"trim": 0.1}}), None),  # more of the worst-reconstructed rows leave the training
    "trim_0.2": (_on_rms({"train": {"trim": 0.2}}), None),
    "trim_0.3": (_on_rms({"train": {"trim": 0.3}}), None),
    "trim_0.4": (_on_rms({"train": {"trim": 0.4}}), None),
    # on the trimmed unit: a net that learns less of a class of its own in the sample (a third of the rows)
    "dropout_0.1": (_on_mse({"model": {"dropout": 0.1}}), None),
    "dropout_0.2": (_on_mse({"model": {"dropout": 0.2}}), None),
    # the Welsch training loss: a row's pull on the weights falls off beyond the batch's median error
    "loss_welsch": ({"model": {"loss": "welsch"}}, None),
    "median_error": (_on_mse({"model": {"typical_error": "median"}}), None),  # a robust per-feature error scale
    "auto_error": (_on_mse({"model": AUTO}), None),  # the median where many rows miss by far
    "rank_views": (_on_rms({}), None),  # every column twice: as it is and as its rank (RANK_VIEWS below)
    "code_quarter": (_on_rms({}), _layers(4)),  # the default before the half-width code
    "code_quarter_min_steps_300": (_on_rms({"train": {"min_steps": 300}}), _layers(4)),
}
# Candidates that run the `auto` error unit with other thresholds: the constants of
# adspark/models/reconstruction.py they set.
AUTO_RULES: dict[str, dict[str, float]] = {
    "auto_error_far3": {"FAR": 3.0, "RARE_AUTO_SHARE": 0.1},  # the first `auto`: 3 median errors, one share
    "auto_far3": {"FAR": 3.0},
    "auto_far5": {"FAR": 5.0},
    "auto_rare_share_0.1": {"RARE_AUTO_SHARE": 0.1},  # the same share for the rarely-moving features
    "auto_rare_share_0.2": {"RARE_AUTO_SHARE": 0.2},
    "auto_rare_share_0.3": {"RARE_AUTO_SHARE": 0.3},
}
CANDIDATES |= {name: (_on_mse({"model": AUTO}), None) for name in AUTO_RULES}
# Candidates that run the `trimmed` error unit (the default) with other constants of
# adspark/models/reconstruction.py.
TRIM_RULES: dict[str, dict[str, float]] = {
    "trimmed_0.1": {"UNIT_TRIM": 0.1},  # the share of rows left out of the unit
    "trimmed_0.25": {"UNIT_TRIM": 0.25},
    "trimmed_shrink_3": {"UNIT_SHRINK": 3.0},  # how far the unit may shrink (squared)
    "trimmed_shrink_10": {"UNIT_SHRINK": 10.0},
    "trimmed_unbounded": {"UNIT_SHRINK": float("inf")},  # the trimmed mean alone
}
CANDIDATES |= {name: (_on_mse({}), None) for name in TRIM_RULES}
MODULE_CONSTANTS = AUTO_RULES | TRIM_RULES  # every candidate that sets module constants, and the values it sets
# Candidates that scale the numeric columns by another spread than adspark.features.robust_scale's IQR:
# the median absolute deviation first (half the rows may be far off before it breaks down, a quarter for
# the IQR), then the shipped fallbacks.
SCALES = {"scale_mad"}
CANDIDATES |= {name: (_on_mse({}), None) for name in SCALES}
PEER = "sk_iforest"
# Candidates that change the table rather than the configuration: each numeric column is added again
# as its rank, mapped to a standard normal (scikit-learn's QuantileTransformer over the whole table,
# which is also the training sample here): what a user gets from `percent_rank` columns in SQL.
RANK_VIEWS = {"rank_views"}


def with_rank_views(data: quality.Dataset) -> quality.Dataset:
    import pyarrow as pa
    from sklearn.preprocessing import QuantileTransformer

    x = np.column_stack([data.table.column(c).to_numpy() for c in data.numeric])
    ranks = QuantileTransformer(n_quantiles=min(1000, len(x)), output_distribution="normal").fit_transform(x)
    columns = {c: data.table.column(c) for c in data.numeric}
    columns |= {f"rank_{c}": pa.array(ranks[:, i]) for i, c in enumerate(data.numeric)}
    return quality.Dataset(data.name, pa.table(columns), data.labels)


def mad_first(shipped: Callable[[np.ndarray], float]) -> Callable[[np.ndarray], float]:
    """A column's scale: its median absolute deviation (normal-consistent), or `shipped`'s where that is 0."""
    from scipy.stats import median_abs_deviation

    def scale(x: np.ndarray) -> float:
        mad = float(median_abs_deviation(x, scale="normal")) if x.size else 0.0
        return mad if np.isfinite(mad) and mad > 1e-12 else shipped(x)

    return scale


def run_candidate(name: str, data: quality.Dataset, seed: int) -> np.ndarray:
    import adspark.features as features
    import adspark.models.autoencoder as ae
    import adspark.models.reconstruction as rec

    override, layers = CANDIDATES[name]
    shipped, shipped_scale = ae.default_hidden, features.robust_scale
    rule = MODULE_CONSTANTS.get(name, {})
    constants = {k: getattr(rec, k) for k in rule}
    ae.default_hidden = layers or shipped
    if name in SCALES:
        features.robust_scale = mad_first(shipped_scale)
    for k, v in rule.items():
        setattr(rec, k, v)
    try:
        return quality.run_adspark(with_rank_views(data) if name in RANK_VIEWS else data, seed, override)
    finally:
        ae.default_hidden, features.robust_scale = shipped, shipped_scale
        for k, v in constants.items():
            setattr(rec, k, v)


def run(candidates: list[str], tables: list[str], seeds: list[int], save: Path | None) -> list[Row]:
    from sklearn.metrics import average_precision_score, roc_auc_score

    rows: list[Row] = []
    for seed in seeds:
        for table in tables:
            data = quality.LOADERS[table](seed)
            runs: dict[str, Callable[[], np.ndarray]] = {PEER: partial(quality.run_iforest, data, seed)}
            runs |= {c: partial(run_candidate, c, data, seed) for c in candidates}
            for name, fn in runs.items():
                start = time.perf_counter()
                scores = fn()
                row = Row(name, table, seed, float(roc_auc_score(data.labels, scores)),
                          float(average_precision_score(data.labels, scores)), time.perf_counter() - start)
                print(f"seed {seed} {table:12s} {name:28s} ROC {row.roc_auc:.4f} PR {row.pr_auc:.4f} "
                      f"{row.seconds:.1f} s", flush=True)
                rows.append(row)
                if save:
                    save.write_text(json.dumps([asdict(r) for r in rows], indent=1))
    return rows


def candidate_table(rows: list[Row]) -> str:
    m = means(rows)
    tables = [t for t in quality.ROW_TABLES if any(d == t for _, d in m)]
    names = list(dict.fromkeys(r.variant for r in rows))
    lines = ["| candidate | tables | mean ROC-AUC | mean PR-AUC | ≥ IF (ROC) | " + " | ".join(tables) + " |",
             "|---" * (5 + len(tables)) + "|"]
    for v in names:
        on = [t for t in tables if (v, t) in m]
        wins = sum(m[(v, t)][0] >= m[(PEER, t)][0] for t in on if (PEER, t) in m)
        cells = " | ".join(f"{m[(v, t)][0]:.3f} / {m[(v, t)][1]:.3f}" if (v, t) in m else "-" for t in tables)
        lines.append(f"| {v} | {len(on)} | {np.mean([m[(v, t)][0] for t in on]):.3f} | "
                     f"{np.mean([m[(v, t)][1] for t in on]):.3f} | {wins}/{len(on)} | {cells} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidates", default=",".join(CANDIDATES), help="of: " + ", ".join(CANDIDATES))
    parser.add_argument("--datasets", default=None,
                        help="comma-separated tables (default: the shared ones; with --report, every table saved)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--smoke", action="store_true", help="glass and wdbc, seed 0, defaults and code_quarter")
    parser.add_argument("--threads", type=int, default=1, help="TensorFlow threads")
    parser.add_argument("--save", type=Path, default=None, help="write every row as JSON to this file")
    parser.add_argument("--report", type=Path, nargs="*", default=None, help="only tabulate saved runs")
    parser.add_argument("--write-readme", action="store_true", help="replace the table in bench/README.md")
    parser.add_argument("--baseline", default="defaults",
                        help="the candidate the leave-one-table-out table shows beside each choice (default: defaults)")
    parser.add_argument("--section", default="defaults-table",
                        help="the README block to replace (<!-- SECTION:begin --> ... <!-- SECTION:end -->)")
    args = parser.parse_args(argv)
    if args.report is not None:
        keep = {c.strip() for c in args.candidates.split(",")} | {PEER}
        only = {t.strip() for t in args.datasets.split(",")} if args.datasets else None
        rows = [Row(**r) for path in args.report for r in json.loads(path.read_text())
                if r["variant"] in keep and (only is None or r["dataset"] in only)]
    else:
        names = ["defaults", "code_quarter"] if args.smoke else [c.strip() for c in args.candidates.split(",")]
        unknown = sorted(set(names) - set(CANDIDATES))
        if unknown:
            print(f"unknown candidate(s): {', '.join(unknown)}", file=sys.stderr)
            return 2
        quality.limit_threads(args.threads)
        named = (args.datasets or ",".join(SHARED)).split(",")
        tables = ["glass", "wdbc"] if args.smoke else [t.strip() for t in named]
        seeds = [0] if args.smoke else [int(s) for s in args.seeds.split(",")]
        rows = run(names, tables, seeds, args.save)
    if not any(r.variant == args.baseline for r in rows):
        print(f"no rows of the baseline {args.baseline!r}: name one of the candidates with --baseline", file=sys.stderr)
        return 2
    text = candidate_table(rows)
    if len({r.dataset for r in rows}) > 1:  # with one table there is nothing to hold out
        loo = leave_one_out(rows, baseline=args.baseline, wins_first=True)
        text += "\n\nLeave-one-table-out (ROC-AUC):\n\n" + loo
    print(text)
    if args.write_readme:
        quality.write_readme(text, quality.bench_command("defaults.py", argv), section=args.section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
