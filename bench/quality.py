"""Detection quality of adspark's autoencoder and GAN against two peers, on real labelled tables.

Every method trains unsupervised on the full table, anomalies included (the nightly
job never sees clean data); labels are used only to compute ROC-AUC and PR-AUC.

    python bench/quality.py [--datasets wilt,wdbc,mnist,synthetic_heavy_tail] [--seed 0]
                            [--methods adspark,gan,textbook_ae,iforest] [--override '{"train": {"trim": 0.1}}']

Methods, in the same run:
- ``adspark``: adspark's autoencoder (``model.kind: autoencoder``, the defaults);
- ``gan``: adspark's GAN detector (``model.kind: gan``, the defaults; ``--override`` applies too);
- ``textbook_ae``: StandardScaler + a dense Keras autoencoder scored by plain MSE;
- ``iforest``: scikit-learn's IsolationForest(n_estimators=200).

Data: ``$ADSPARK_DATASETS`` or ``../shared/datasets`` next to the repository (see its README.md).
``synthetic_heavy_tail`` is generated here and mimics ODDS "shuttle": multimodal, discrete,
heavy-tailed columns with 7% anomalies in the extreme tails or off the normal manifold.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.ensemble import IsolationForest
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.preprocessing import StandardScaler

DATASETS = ("wilt", "wdbc", "mnist", "synthetic_heavy_tail")
METHODS = ("adspark", "gan", "textbook_ae", "iforest")


@dataclass
class Dataset:
    name: str
    table: pa.Table  # float64 feature columns only
    labels: np.ndarray  # 1 = anomaly

    @property
    def x(self) -> np.ndarray:
        return np.column_stack([self.table.column(c).to_numpy() for c in self.table.column_names])


@dataclass
class Result:
    dataset: str
    method: str
    roc_auc: float
    pr_auc: float
    seconds: float


def datasets_dir() -> Path:
    override = os.environ.get("ADSPARK_DATASETS")
    return Path(override) if override else Path(__file__).resolve().parents[2] / "shared" / "datasets"


def _float_table(table: pa.Table, features: list[str]) -> pa.Table:
    return pa.table({c: table.column(c).cast(pa.float64()) for c in features})


def _labelled(name: str, file: str, label: str) -> Dataset:
    table = pq.read_table(datasets_dir() / file)
    features = [c for c in table.column_names if c != label]
    y = table.column(label).to_numpy().astype(np.int64)
    return Dataset(name, _float_table(table, features), y)


def load_wilt(seed: int) -> Dataset:
    return _labelled("wilt", "wilt.parquet", "label")


def load_wdbc(seed: int) -> Dataset:
    return _labelled("wdbc", "wdbc.parquet", "malignant")


def load_mnist(seed: int, normal_digit: int = 0, anomaly_share: float = 0.05) -> Dataset:
    """One-class protocol: one digit is normal, other digits sampled to `anomaly_share` of the table."""
    table = pq.read_table(datasets_dir() / "mnist_5k.parquet")
    digit = table.column("label").to_numpy().astype(np.int64)
    normal = np.flatnonzero(digit == normal_digit)
    others = np.flatnonzero(digit != normal_digit)
    n_anom = round(len(normal) * anomaly_share / (1.0 - anomaly_share))
    rng = np.random.default_rng(seed)
    rows = np.sort(np.concatenate([normal, rng.choice(others, n_anom, replace=False)]))
    features = [f"p{i}" for i in range(784)]
    return Dataset(
        "mnist", _float_table(table.take(pa.array(rows)), features), (digit[rows] != normal_digit).astype(int)
    )


def synthetic_heavy_tail(seed: int, n: int = 20_000, anomaly_share: float = 0.07) -> Dataset:
    """A shuttle-like table: 9 columns, integer-valued, multimodal normal classes, heavy tails.

    Normal rows come from a few clusters on a 3-d latent manifold (a dominant class and smaller
    ones), mapped to 9 columns with Student-t noise and rounded to integers; two columns are
    near-constant spikes with rare large excursions (as in shuttle). Anomalies (7%) are a mix of
    extreme-tail rows, rows breaking the columns' correlation, and small far-off clusters.
    """
    rng = np.random.default_rng(seed)
    d, k = 9, 3
    n_anom = round(n * anomaly_share)
    n_norm = n - n_anom
    mix = rng.multinomial(n_norm, [0.80, 0.12, 0.05, 0.03])
    centers = rng.normal(0.0, 3.0, size=(4, k))
    loading = rng.normal(0.0, 1.0, size=(k, d))
    col_scale = np.array([8.0, 3.0, 10.0, 1.0, 20.0, 40.0, 12.0, 30.0, 25.0])
    offset = np.array([50.0, 0.0, 80.0, 0.0, 40.0, 10.0, 0.0, 30.0, 10.0])

    def emit(latent: np.ndarray, tail_df: float) -> np.ndarray:
        noise = rng.standard_t(tail_df, size=(len(latent), d)) * 0.25
        return (latent @ loading + noise) * col_scale + offset

    latent = np.vstack([c + rng.normal(0.0, 0.6, size=(m, k)) for c, m in zip(centers, mix, strict=True)])
    normal = emit(latent, tail_df=3.0)
    spikes = rng.random((n_norm, 2)) < 0.03
    normal[:, [1, 3]] = np.where(spikes, rng.standard_cauchy((n_norm, 2)) * 30.0, rng.integers(-1, 2, (n_norm, 2)))

    n_tail, n_off = n_anom // 3, n_anom // 3
    n_clu = n_anom - n_tail - n_off
    tail = emit(centers[rng.integers(0, 4, n_tail)] + rng.normal(0, 0.6, (n_tail, k)), tail_df=3.0)
    dense_cols = np.array([0, 2, 4, 5, 6, 7, 8])
    cols = dense_cols[rng.integers(0, len(dense_cols), size=(n_tail, 2))]
    for j in range(2):
        tail[np.arange(n_tail), cols[:, j]] += (
            rng.choice([-1, 1], n_tail) * rng.uniform(4, 12, n_tail) * col_scale[cols[:, j]]
        )
    off = emit(centers[rng.integers(0, 4, n_off)] + rng.normal(0, 0.6, (n_off, k)), tail_df=3.0)
    shuffle = rng.integers(0, n_off, size=(n_off, d))
    off = off[shuffle, np.arange(d)]  # each column from a different normal row: marginals kept, manifold broken
    far = rng.normal(0.0, 3.0, size=(2, k)) + np.array([6.0, -6.0, 0.0])
    clu = emit(far[rng.integers(0, 2, n_clu)] + rng.normal(0, 0.4, (n_clu, k)), tail_df=3.0)
    anomalies = np.vstack([tail, off, clu])
    anomalies[:, [1, 3]] = rng.integers(-1, 2, (n_anom, 2))

    x = np.rint(np.vstack([normal, anomalies]))
    y = np.r_[np.zeros(n_norm, dtype=int), np.ones(n_anom, dtype=int)]
    order = rng.permutation(n)
    table = pa.table({f"v{i}": x[order, i] for i in range(d)})
    return Dataset("synthetic_heavy_tail", table, y[order])


LOADERS: dict[str, Callable[[int], Dataset]] = {
    "wilt": load_wilt,
    "wdbc": load_wdbc,
    "mnist": load_mnist,
    "synthetic_heavy_tail": synthetic_heavy_tail,
}


def run_adspark(data: Dataset, seed: int, override: dict[str, Any], kind: str = "autoencoder") -> np.ndarray:
    from adspark.config import parse_config
    from adspark.models import make_detector

    cfg_dict = json.loads(json.dumps(override))
    cfg_dict.setdefault("train", {}).setdefault("seed", seed)
    cfg_dict.setdefault("model", {})["kind"] = kind
    cfg = parse_config(cfg_dict)
    det = make_detector(cfg, list(data.table.column_names), []).fit(data.table)
    return det.decision_function(data.table)


def textbook_sizes(d: int) -> list[int]:
    return [max(2, d // 2), max(1, d // 4), max(2, d // 2)]


def run_textbook_ae(data: Dataset, seed: int, epochs: int = 30, batch_size: int = 256) -> np.ndarray:
    """StandardScaler + dense relu autoencoder, MSE loss, scored by plain per-row MSE."""
    import keras

    x = StandardScaler().fit_transform(data.x).astype(np.float32)
    keras.utils.set_random_seed(seed)
    inp = keras.Input((x.shape[1],))
    h = inp
    for units in textbook_sizes(x.shape[1]):
        h = keras.layers.Dense(units, activation="relu")(h)
    model = keras.Model(inp, keras.layers.Dense(x.shape[1])(h))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    model.fit(x, x, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0)
    recon = model.predict(x, batch_size=8192, verbose=0)
    return np.mean(np.square(x - recon), axis=1)


def run_iforest(data: Dataset, seed: int) -> np.ndarray:
    forest = IsolationForest(n_estimators=200, random_state=seed, n_jobs=1).fit(data.x)
    return -forest.score_samples(data.x)


def evaluate(data: Dataset, method: str, seed: int, override: dict[str, Any]) -> Result:
    start = time.perf_counter()
    if method == "adspark":
        scores = run_adspark(data, seed, override)
    elif method == "gan":
        scores = run_adspark(data, seed, override, kind="gan")
    elif method == "textbook_ae":
        scores = run_textbook_ae(data, seed)
    elif method == "iforest":
        scores = run_iforest(data, seed)
    else:
        raise ValueError(f"unknown method {method!r}")
    seconds = time.perf_counter() - start
    roc = float(roc_auc_score(data.labels, scores))
    pr = float(average_precision_score(data.labels, scores))
    return Result(data.name, method, roc, pr, seconds)


def format_table(results: list[Result]) -> str:
    lines = [f"{'dataset':<22} {'method':<12} {'ROC-AUC':>8} {'PR-AUC':>8} {'train s':>8}", "-" * 62]
    for r in results:
        lines.append(f"{r.dataset:<22} {r.method:<12} {r.roc_auc:>8.4f} {r.pr_auc:>8.4f} {r.seconds:>8.1f}")
    return "\n".join(lines)


def describe(data: Dataset) -> str:
    return (
        f"{data.name}: {data.table.num_rows} rows x {data.table.num_columns} cols, {data.labels.mean():.1%} anomalies"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--datasets", default=",".join(DATASETS), help="comma-separated subset of: " + ", ".join(DATASETS)
    )
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of: " + ", ".join(METHODS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--override", default="{}", help="JSON config overrides for adspark, e.g. '{\"train\": {}}'")
    parser.add_argument("--json", action="store_true", help="also print the results as JSON lines")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = [s.strip() for s in args.datasets.split(",") if s.strip()]
    methods = [s.strip() for s in args.methods.split(",") if s.strip()]
    unknown = sorted(set(names) - set(DATASETS)) + sorted(set(methods) - set(METHODS))
    if unknown:
        print(f"unknown dataset(s) or method(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    override = json.loads(args.override)
    results: list[Result] = []
    for name in names:
        data = LOADERS[name](args.seed)
        print(describe(data), flush=True)
        results += [evaluate(data, method, args.seed, override) for method in methods]
    print()
    print(format_table(results))
    if args.json:
        for r in results:
            print(json.dumps(vars(r)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
