"""The textbook baseline for bench/score_vs_copy.py: Keras `model.predict` inside a pandas UDF.

    python bench/_textbook_job.py train --input IN --model OUT.keras [--sample-rows 50000] [--epochs 5]
    python bench/_textbook_job.py score --input IN --model M.keras --output OUT [--conf k=v ...]

`train` fits the same dense autoencoder architecture adspark builds (its
`default_hidden` layer sizes) on standardized features (mean/std of a sample) on the
driver, and saves `OUT.keras` plus `OUT.scaler.json`. `score` is what most tutorials
show: a SCALAR_ITER pandas UDF over the feature columns that loads the .keras model
once per iterator (i.e. per task), standardizes each Arrow batch in pandas/numpy,
calls `model.predict(batch)`, and returns the per-row MSE; every input column plus
the score is written to Parquet.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np
import pandas as pd
from _spark import DEFAULT_MASTER, build_session, parse_conf


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=("train", "score"))
    p.add_argument("--input", required=True)
    p.add_argument("--model", required=True, help=".keras path (written by train, read by score)")
    p.add_argument("--output")
    p.add_argument("--ids", default="txn_id")
    p.add_argument("--sample-rows", type=int, default=50_000)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--master", default=DEFAULT_MASTER)
    p.add_argument("--conf", action="append", default=[], help="extra Spark setting key=value (repeatable)")
    return p.parse_args()


def _scaler_path(model: str) -> Path:
    return Path(model).with_suffix(".scaler.json")


def _training_sample(path: str, ids: list[str], rows: int, seed: int) -> tuple[list[str], np.ndarray]:
    import pyarrow.dataset as ds

    table = ds.dataset(path, format="parquet").to_table()
    features = [c for c in table.column_names if c not in ids]
    take = np.sort(np.random.default_rng(seed).choice(table.num_rows, min(rows, table.num_rows), replace=False))
    sample = table.select(features).take(take)
    return features, np.column_stack([sample.column(c).to_numpy() for c in features]).astype(np.float64)


def train(args: argparse.Namespace) -> None:
    import keras

    from adspark.models.autoencoder import build_autoencoder, default_hidden

    started = time.perf_counter()
    features, x = _training_sample(args.input, args.ids.split(","), args.sample_rows, args.seed)
    mean, std = x.mean(axis=0), x.std(axis=0)
    std[std < 1e-12] = 1.0
    z = ((x - mean) / std).astype(np.float32)
    keras.utils.set_random_seed(args.seed)
    model = build_autoencoder(z.shape[1], default_hidden(z.shape[1]), "relu", 1e-3)
    model.fit(z, z, batch_size=256, epochs=args.epochs, validation_split=0.1, shuffle=True, verbose=0)
    model.save(args.model)
    scaler = {"features": features, "mean": mean.tolist(), "std": std.tolist()}
    _scaler_path(args.model).write_text(json.dumps(scaler))
    print(f"textbook train: {len(z)} rows, {z.shape[1]} features, {time.perf_counter() - started:.1f} s")


def make_udf(model_path: str, mean: np.ndarray, std: np.ndarray) -> Any:
    from pyspark.sql.functions import pandas_udf

    @pandas_udf("double")
    def mse(batches: Iterator[tuple[pd.Series, ...]]) -> Iterator[pd.Series]:
        import keras

        model = keras.models.load_model(model_path, compile=False)
        for cols in batches:
            x = (np.column_stack([c.to_numpy(dtype=np.float64) for c in cols]) - mean) / std
            recon = model.predict(x.astype(np.float32), verbose=0)
            yield pd.Series(np.mean(np.square(x - recon), axis=1))

    return mse


def score(args: argparse.Namespace) -> None:
    from pyspark.sql import functions as F

    if not args.output:
        raise SystemExit("score needs --output")
    started = time.perf_counter()
    scaler = json.loads(_scaler_path(args.model).read_text())
    spark = build_session("bench-textbook", args.master, parse_conf(args.conf))
    df = spark.read.parquet(args.input)
    udf = make_udf(str(Path(args.model).resolve()), np.asarray(scaler["mean"]), np.asarray(scaler["std"]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        scored = df.withColumn("anomaly_score", udf(*[F.col(f"`{c}`").cast("double") for c in scaler["features"]]))
    scored.write.mode("overwrite").parquet(args.output)
    print(f"textbook score: total {time.perf_counter() - started:.1f} s")
    spark.stop()


def main() -> None:
    args = _args()
    train(args) if args.mode == "train" else score(args)


if __name__ == "__main__":
    main()
