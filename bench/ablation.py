"""Ablation of the autoencoder's design, and a leave-one-table-out choice of its defaults.

    python bench/ablation.py [--variants baseline,no_trim,...] [--seeds 0,1,2] [--save FILE] [--write-readme]
    python bench/ablation.py --report FILE [--write-readme]   # the tables again, from a saved run

Every table of bench/quality.py (`TABLES`), every seed, one variant at a time: each variant is the
present defaults with one or a few design choices changed (`VARIANTS`). Labels only score.

A fit of the Keras detector costs about 10 s here whatever the table's size (graph tracing, one
callback round per epoch), so a grid of ~30 variants x 13 tables x 3 seeds would take hours on two
shared cores. The ablation therefore trains a replica of adspark's autoencoder written with PyTorch
(`replica_scores`): the same preprocessing (adspark.features.Preprocessor for median/IQR scaling with
the automatic signed log), the same network (adspark.models.autoencoder.default_hidden, Glorot-uniform
weights, zero biases, linear code and output layers), Adam, batch size, validation split, early
stopping that keeps the best epoch's weights, warm-up then trimming of the worst-reconstructed rows,
the per-feature error scale with its floor, the column weights and the score on the unclipped
features. `baseline` is that replica with today's defaults; bench/quality.py measures the real
detector, and the chosen defaults are measured there with the real detector, not the replica.

Leave-one-table-out: for each table T, the variant with the best mean ROC-AUC over the other tables
(seeds averaged) is "the default chosen without T"; the report gives its ROC-AUC and PR-AUC on T,
next to the variant chosen on all tables and to sklearn's IsolationForest on T.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
import quality

BASE: dict[str, Any] = {
    "scaling": "robust",  # robust (median/IQR, adspark), standard (mean/std), quantile (to a normal), minmax
    "log": "auto",  # auto: adspark's signed log for heavy-tailed columns; none
    "clip": 5.0,  # network input clipped to +-clip (None: not clipped)
    "score_clipped": False,  # score the error on the clipped features instead of the unclipped ones
    "error_scale": True,  # divide each feature's error by its typical training error
    "trim": 0.05,
    "hidden": None,  # None: adspark's default_hidden(d); else a list, or "half" (d/2, d/4)
    "epochs": 30,
    "patience": 5,
    "validation_split": 0.1,
    "batch_size": 256,
    "learning_rate": 1e-3,
    "weight_decay": 0.0,
    "dropout": 0.0,
    "batch_norm": False,
    "ensemble": 1,
    "activation": "relu",
    "min_steps": 0,  # raise the epochs so that training takes at least this many steps (small tables)
    "adaptive_batch": False,  # batch size = clamp(rows / 32, 32, batch_size)
    "input_distance": 0.0,  # + weight x mean squared (unclipped) feature: the row's distance from the medians
    "code_distance": 0.0,  # + weight x mean squared code, each code unit standardised on the training rows
}

VARIANTS: dict[str, dict[str, Any]] = {
    "baseline": {},
    # preprocessing
    "no_clip": {"clip": None},
    "clip_3": {"clip": 3.0},
    "clip_10": {"clip": 10.0},
    "score_clipped": {"score_clipped": True},
    "no_log": {"log": "none"},
    "standard": {"scaling": "standard"},
    "standard_no_log": {"scaling": "standard", "log": "none"},
    "quantile": {"scaling": "quantile", "log": "none"},
    "minmax": {"scaling": "minmax", "log": "none", "clip": None},
    # score
    "no_error_scale": {"error_scale": False},
    "standard_no_error_scale": {"scaling": "standard", "error_scale": False},
    # training
    "no_trim": {"trim": 0.0},
    "trim_0.1": {"trim": 0.1},
    "epochs_10": {"epochs": 10},
    "epochs_100": {"epochs": 100, "patience": 10},
    "lr_1e-2": {"learning_rate": 1e-2},
    "lr_1e-4": {"learning_rate": 1e-4},
    "batch_32": {"batch_size": 32},
    "weight_decay": {"weight_decay": 1e-5},
    "no_validation": {"validation_split": 0.0},
    # network
    "wide_64_32": {"hidden": [64, 32]},
    "narrow_half": {"hidden": "half"},
    "bottleneck_2": {"hidden": "code2"},
    "dropout_0.2": {"dropout": 0.2},
    "batch_norm": {"batch_norm": True},
    "pyod_like": {"scaling": "standard", "log": "none", "hidden": [64, 32], "dropout": 0.2, "batch_norm": True},
    "ensemble_5": {"ensemble": 5},
    "input_distance_0.5": {"input_distance": 0.5},
    "input_distance_1": {"input_distance": 1.0},
    "code_distance_0.5": {"code_distance": 0.5},
    "code_distance_1": {"code_distance": 1.0},
    "min_steps_1000": {"min_steps": 1000},
    "min_steps_3000": {"min_steps": 3000},
    "adaptive_batch": {"adaptive_batch": True},
    "quantile_min_steps_1000": {"scaling": "quantile", "log": "none", "min_steps": 1000},
    "h_32x2_c3d2": {"hidden": "rule:32,2,3,2"},
    "h_16x1_c3d2": {"hidden": "rule:16,1,3,2"},
    "h_64x1_c4d3": {"hidden": "rule:64,1,4,3"},
    "h_64x2_c4d2": {"hidden": "rule:64,2,4,2"},
    "h_32x2_c3d2_bn_do": {"hidden": "rule:32,2,3,2", "batch_norm": True, "dropout": 0.2},
    "h_64x2_c4d2_bn_do": {"hidden": "rule:64,2,4,2", "batch_norm": True, "dropout": 0.2},
    "wide_bn_do": {"hidden": [64, 32], "batch_norm": True, "dropout": 0.2},
    "h_32x2_c3d2_trim_0.1": {"hidden": "rule:32,2,3,2", "trim": 0.1},
    "h_32x2_c3d2_dist_0.5": {"hidden": "rule:32,2,3,2", "input_distance": 0.5},
    "lr_1e-2_quantile": {"scaling": "quantile", "log": "none", "learning_rate": 1e-2},
}


def hidden_for(spec: Any, d: int) -> list[int]:
    from adspark.models.autoencoder import default_hidden

    if spec is None:
        return default_hidden(d)
    if spec == "half":
        return [max(2, d // 2), max(1, d // 4)]
    if spec == "code2":
        return [default_hidden(d)[0], 2]
    if isinstance(spec, str) and spec.startswith("rule:"):  # rule:FIRST_MIN,FIRST_MULT,CODE_MIN,CODE_DIV
        first_min, mult, code_min, div = (int(p) for p in spec[5:].split(","))
        return [int(min(128, max(first_min, mult * d))), int(max(code_min, min(32, d // div)))]
    return list(spec)


def features_for(data: quality.Dataset, v: dict[str, Any]) -> np.ndarray:
    """The unclipped feature matrix of a variant's preprocessing."""
    from adspark.features import HEAVY_TAIL_FRACTION, HEAVY_TAIL_Z, LOG_KNEE, Preprocessor, _slog

    if v["scaling"] == "robust":
        pre = Preprocessor(data.numeric, [], transform_default="auto" if v["log"] == "auto" else "none")
        return pre.fit(data.table).transform([data.table.column(c) for c in data.numeric])
    x = data.x
    if v["scaling"] == "quantile":
        from sklearn.preprocessing import QuantileTransformer

        qt = QuantileTransformer(n_quantiles=min(1000, len(x)), output_distribution="normal", random_state=0)
        return qt.fit_transform(x)
    if v["scaling"] == "minmax":
        span = x.max(axis=0) - x.min(axis=0)
        return (x - x.min(axis=0)) / np.where(span > 1e-12, span, 1.0)
    std = x.std(axis=0)
    z = (x - x.mean(axis=0)) / np.where(std > 1e-12, std, 1.0)
    if v["log"] == "auto":
        heavy = np.mean(np.abs(z) > HEAVY_TAIL_Z, axis=0) > HEAVY_TAIL_FRACTION
        z[:, heavy] = _slog(z[:, heavy], LOG_KNEE)
    return z


def _network(d: int, hidden: list[int], v: dict[str, Any]) -> Any:
    import torch
    from torch import nn

    act = {"relu": nn.ReLU, "elu": nn.ELU, "tanh": nn.Tanh, "leaky_relu": nn.LeakyReLU}[v["activation"]]
    layers: list[nn.Module] = []
    sizes = hidden + hidden[-2::-1]
    prev = d
    for i, units in enumerate(sizes):
        layers.append(nn.Linear(prev, units))
        if i != len(hidden) - 1:  # the code layer is linear
            if v["batch_norm"]:
                layers.append(nn.BatchNorm1d(units))
            layers.append(act())
            if v["dropout"]:
                layers.append(nn.Dropout(v["dropout"]))
        prev = units
    layers.append(nn.Linear(prev, d))
    net = nn.Sequential(*layers)
    for m in net:
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
    return net.to(torch.float32)


def _phase(net: Any, opt: Any, x_tr: Any, x_val: Any, epochs: int, v: dict[str, Any], gen: Any) -> None:
    """Like one Keras `fit` with EarlyStopping(restore_best_weights=True): ends on the best epoch's weights."""
    import torch

    best, best_state, wait = float("inf"), None, 0
    bs = v["batch_size"]
    for _ in range(epochs):
        net.train()
        perm = torch.randperm(len(x_tr), generator=gen)
        total = 0.0
        for i in range(0, len(x_tr), bs):
            idx = perm[i : i + bs]
            if v["batch_norm"] and len(idx) < 2:
                continue
            b = x_tr[idx]
            loss = torch.mean((net(b) - b) ** 2)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        net.eval()
        with torch.no_grad():
            monitor = float(torch.mean((net(x_val) - x_val) ** 2)) if len(x_val) else total / len(x_tr)
        if monitor < best:
            best, best_state, wait = monitor, copy.deepcopy(net.state_dict()), 0
        else:
            wait += 1
            if wait >= v["patience"]:
                break
    if best_state is not None:
        net.load_state_dict(best_state)


def _trim(net: Any, x: Any, idx: np.ndarray, trim: float) -> np.ndarray:
    import torch

    from adspark.models.autoencoder import TRIM_ERROR_FLOOR

    with torch.no_grad():
        sq = ((x[idx] - net(x[idx])) ** 2).double().numpy()
    err = np.mean(sq / np.maximum(np.median(sq, axis=0), TRIM_ERROR_FLOOR), axis=1)
    return idx[err <= np.quantile(err, 1.0 - trim)]


def replica_scores(data: quality.Dataset, seed: int, variant: dict[str, Any]) -> np.ndarray:
    """adspark's autoencoder algorithm, in PyTorch, with the variant's settings."""
    import torch

    v = {**BASE, **variant}
    features = features_for(data, v)
    clip = v["clip"]
    xin = np.clip(features, -clip, clip) if clip is not None else features
    x = torch.tensor(xin, dtype=torch.float32)
    n, d = x.shape
    order = np.random.default_rng(seed).permutation(n)
    n_val = int(n * v["validation_split"]) if n * v["validation_split"] >= 8 else 0
    hidden = hidden_for(v["hidden"], d)
    if v["adaptive_batch"]:
        v["batch_size"] = int(min(v["batch_size"], max(32, n // 32)))
    steps = max(1, -(-(n - n_val) // v["batch_size"]))
    v["epochs"] = max(v["epochs"], min(500, -(-v["min_steps"] // steps)))
    target = xin if v["score_clipped"] else features
    sq_err = np.zeros(d)
    recons: list[np.ndarray] = []
    codes: list[np.ndarray] = []
    for member in range(v["ensemble"]):
        torch.manual_seed(seed * 1000 + member)
        gen = torch.Generator().manual_seed(seed * 1000 + member)
        net = _network(d, hidden, v)
        opt = torch.optim.Adam(net.parameters(), lr=v["learning_rate"], eps=1e-7, weight_decay=v["weight_decay"])
        val_idx, tr_idx = order[:n_val], order[n_val:]
        warmup = max(1, v["epochs"] // 4) if v["trim"] > 0 else 0
        if warmup:
            _phase(net, opt, x[tr_idx], x[val_idx], warmup, v, gen)
            net.eval()
            tr_idx = _trim(net, x, tr_idx, v["trim"])
            val_idx = _trim(net, x, val_idx, v["trim"]) if len(val_idx) else val_idx
        _phase(net, opt, x[tr_idx], x[val_idx], v["epochs"] - warmup, v, gen)
        net.eval()
        with torch.no_grad():
            recon = net(x).double().numpy()
            code = net[: _code_end(net, len(hidden))](x).double().numpy()
        sq_err += np.mean(np.square(target[tr_idx] - recon[tr_idx]), axis=0)
        recons.append(recon)
        mu, sd = code[tr_idx].mean(axis=0), code[tr_idx].std(axis=0)
        codes.append(np.mean(np.square((code - mu) / np.where(sd > 1e-6, sd, 1.0)), axis=1))
    if v["error_scale"]:
        scale = np.sqrt(sq_err / v["ensemble"])
        scale = np.maximum(scale, max(1e-2, 0.1 * float(np.median(scale))))
    else:
        scale = np.ones(d)
    score = np.mean([np.sum(np.square((target - r) / scale), axis=1) / d for r in recons], axis=0)
    score += v["input_distance"] * np.mean(np.square(features), axis=1)
    return score + v["code_distance"] * np.mean(codes, axis=0)


def _code_end(net: Any, n_hidden: int) -> int:
    """Index one past the code layer (the n_hidden-th Linear) in the Sequential."""
    from torch import nn

    seen = 0
    for i, m in enumerate(net):
        seen += isinstance(m, nn.Linear)
        if seen == n_hidden:
            return i + 1
    raise ValueError("no code layer")


@dataclass
class Row:
    variant: str
    dataset: str
    seed: int
    roc_auc: float
    pr_auc: float
    seconds: float


def run(
    variants: list[str], tables: list[str], seeds: list[int], save: Path | None = None, with_iforest: bool = True
) -> list[Row]:
    """Every variant on every table and seed; with `save`, the rows so far are rewritten after each table."""
    rows: list[Row] = []
    for seed in seeds:
        for name in tables:
            data = quality.LOADERS[name](seed)
            todo = [(v, VARIANTS[v]) for v in variants]
            for vname, variant in todo:
                start = time.perf_counter()
                s = replica_scores(data, seed, variant)
                rows.append(_row(vname, data, seed, s, start))
            if with_iforest:
                start = time.perf_counter()
                rows.append(_row("sk_iforest", data, seed, quality.run_iforest(data, seed), start))
            print(f"seed {seed} {name}: " + " ".join(f"{r.variant}={r.roc_auc:.3f}" for r in rows[-len(todo) - 1 :]))
            sys.stdout.flush()
            if save:
                save.write_text(json.dumps([vars(r) for r in rows], indent=1))
    return rows


def _row(vname: str, data: quality.Dataset, seed: int, scores: np.ndarray, start: float) -> Row:
    return Row(
        vname,
        data.name,
        seed,
        float(roc_auc_score(data.labels, scores)),
        float(average_precision_score(data.labels, scores)),
        time.perf_counter() - start,
    )


def means(rows: list[Row]) -> dict[tuple[str, str], tuple[float, float]]:
    """Mean ROC-AUC and PR-AUC over seeds per (variant, table).

    Runs saved in several files repeat a (variant, table, seed), the forest's above all: the first
    counts, so a seed is not weighted twice.
    """
    cells: dict[tuple[str, str], dict[int, Row]] = {}
    for r in rows:
        cells.setdefault((r.variant, r.dataset), {}).setdefault(r.seed, r)
    return {
        k: (float(np.mean([r.roc_auc for r in v.values()])), float(np.mean([r.pr_auc for r in v.values()])))
        for k, v in cells.items()
    }


def ablation_table(rows: list[Row]) -> str:
    """One line per variant: mean ROC-AUC / PR-AUC over the tables it ran on, and per table."""
    m = means(rows)
    tables = [t for t in quality.ROW_TABLES if any(d == t for _, d in m)]
    variants = list(dict.fromkeys(r.variant for r in rows))
    lines = [
        "| variant | changes | tables | mean ROC-AUC | mean PR-AUC | Δ ROC vs baseline (same tables) | ≥ IF |"
        + " | ".join(tables)
        + " |",
        "|---" * (7 + len(tables)) + "|",
    ]
    for v in variants:
        on = [t for t in tables if (v, t) in m]
        roc = np.mean([m[(v, t)][0] for t in on])
        pr = np.mean([m[(v, t)][1] for t in on])
        base_on = [t for t in on if ("baseline", t) in m]
        delta = roc - np.mean([m[("baseline", t)][0] for t in base_on]) if len(base_on) == len(on) else float("nan")
        wins = sum(m[(v, t)][0] >= m[("sk_iforest", t)][0] for t in on if ("sk_iforest", t) in m)
        changes = json.dumps(VARIANTS[v]).replace("|", "/") if v in VARIANTS else "(peer)"
        cells = " | ".join(f"{m[(v, t)][0]:.3f}" if (v, t) in m else "-" for t in tables)
        lines.append(
            f"| {v} | `{changes}` | {len(on)} | {roc:.3f} | {pr:.3f} | {delta:+.3f} | {wins}/{len(on)} | {cells} |"
        )
    return "\n".join(lines)


def leave_one_out(rows: list[Row], metric: int = 0, baseline: str = "baseline", wins_first: bool = False) -> str:
    """For each table: the variant with the best mean ROC-AUC on the others, and how it does there.

    Only variants measured on every table `baseline` ran on compete, over those tables. With `wins_first`
    the variant at or above IsolationForest's ROC-AUC on the most of those tables is chosen, and the mean
    only breaks ties: the quality target is per table.
    """
    m = means(rows)
    tables = [t for t in quality.ROW_TABLES if (baseline, t) in m]
    variants = [v for v in dict.fromkeys(r.variant for r in rows) if v != "sk_iforest"]
    variants = [v for v in variants if all((v, t) in m for t in tables)]

    def wins(v: str, on: list[str]) -> int:
        return sum(m[(v, t)][0] >= m[("sk_iforest", t)][0] for t in on if ("sk_iforest", t) in m)

    def best(on: list[str]) -> str:
        mean = {v: float(np.mean([m[(v, t)][metric] for t in on])) for v in variants}
        return max(variants, key=lambda v: (wins(v, on) if wins_first else 0, mean[v]))

    chosen_all = best(tables)
    lines = [
        f"{len(variants)} variants on the {len(tables)} tables they all ran on; chosen on all of them"
        f"{' (most tables ≥ IF, then mean ROC-AUC)' if wins_first else ''}: `{chosen_all}`.",
        "",
        "| held-out table | chosen on the others | its ROC-AUC / PR-AUC there | all-table choice there |"
        f" {baseline} there | IsolationForest there | held-out ≥ IF |",
        "|---|---|---|---|---|---|---|",
    ]
    for t in tables:
        v = best([o for o in tables if o != t])
        iforest = m.get(("sk_iforest", t), (float("nan"), float("nan")))
        lines.append(
            f"| {t} | `{v}` | {m[(v, t)][0]:.3f} / {m[(v, t)][1]:.3f} | {m[(chosen_all, t)][0]:.3f} |"
            f" {m[(baseline, t)][0]:.3f} | {iforest[0]:.3f} / {iforest[1]:.3f} |"
            f" {'yes' if m[(v, t)][0] >= iforest[0] else 'no'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated, of: " + ", ".join(VARIANTS))
    parser.add_argument("--datasets", default=",".join(quality.TABLES), help="comma-separated tables")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--save", type=Path, default=None, help="write every row as JSON to this file")
    parser.add_argument("--report", type=Path, nargs="*", default=None, help="only print the tables of saved runs")
    parser.add_argument("--write-readme", action="store_true", help="replace the ablation table in bench/README.md")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    if args.report is not None:
        rows = [Row(**r) for path in args.report for r in json.loads(path.read_text())]
    else:
        variants = [v.strip() for v in args.variants.split(",") if v.strip()]
        unknown = sorted(set(variants) - set(VARIANTS))
        if unknown:
            print(f"unknown variant(s): {', '.join(unknown)}", file=sys.stderr)
            return 2
        seeds = [int(s) for s in args.seeds.split(",")]
        rows = run(variants, [t.strip() for t in args.datasets.split(",")], seeds, args.save)
    text = ablation_table(rows) + "\n\nLeave-one-table-out (ROC-AUC):\n\n" + leave_one_out(rows)
    print(text)
    if args.write_readme:
        quality.write_readme(text, quality.bench_command("ablation.py", argv), section="ablation-table")
    return 0


if __name__ == "__main__":
    sys.exit(main())
