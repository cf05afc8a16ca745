"""Where the Python side of `adspark score` spends its time, per Arrow batch, without Spark.

    python bench/profile_scorer.py --model-dir D --input P [--batch-rows 10000] [--repeats 200]

Builds adspark's own scorer from a saved artifact (adspark.artifact.load_artifact +
adspark.runtime.build_scorer, as the UDF does), takes `batch-rows` rows of the
input as the pa.StructArray the UDF receives, and times each step of
`batch_scorer`'s loop body separately (median over `repeats`):

    flatten -> Preprocessor.transform -> network_input (clip, float32) -> session.run
            -> recon.astype(float64) -> error (scaled MSE) -> pa.array(scores)

then the same batch through candidate rewrites (vectorized preprocessing, float32
error maths, larger batches) to size what a change in adspark/runtime.py or
adspark/features.py would gain. Results are checked against adspark's own scores.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds

from adspark.artifact import load_artifact
from adspark.features import Preprocessor
from adspark.runtime import AutoencoderScorer, build_scorer


def load_batch(path: str, features: list[str], rows: int) -> pa.StructArray:
    """`rows` rows of the feature columns as the struct the UDF receives (one chunk, float64)."""
    table = ds.dataset(path, format="parquet").head(rows, columns=features)
    cols = [table.column(c).combine_chunks().cast(pa.float64()) for c in features]
    return pa.StructArray.from_arrays(cols, names=features)


def timeit(fn: Callable[[], Any], repeats: int) -> float:
    """Median seconds of `fn()` over `repeats` calls (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _error(scorer: AutoencoderScorer, features: np.ndarray, recon: np.ndarray) -> np.ndarray:
    """adspark's per-row error as written in runtime.py (weighted sum if the artifact has weights)."""
    sq = np.square((features - recon) / scorer.error_scale)
    weights = getattr(scorer, "weights", None)
    return np.sum(sq * weights, axis=1) if weights is not None else np.mean(sq, axis=1)


def _network_input(scorer: AutoencoderScorer, features: np.ndarray) -> np.ndarray:
    x = scorer.preprocessor.network_input(features)
    frozen = getattr(scorer, "frozen", None)
    if frozen is not None and len(frozen):
        x[:, frozen] = scorer.frozen_values
    return x


def adspark_steps(scorer: AutoencoderScorer, batch: pa.StructArray, repeats: int) -> dict[str, float]:
    """adspark's loop body, step by step, each timed on its own input (single-model artifacts)."""
    pre, session, name = scorer.preprocessor, scorer.sessions[0], scorer.input_names[0]
    arrays = batch.flatten()
    features = pre.transform(arrays)
    x = _network_input(scorer, features)
    recon32 = session.run(None, {name: x})[0]
    recon = recon32.astype(np.float64)
    scores = _error(scorer, features, recon)
    if len(scorer.sessions) != 1 or not np.allclose(scores, scorer.score_features(features), rtol=1e-12, atol=0):
        print("  WARNING: this step-by-step copy no longer matches adspark's score_features; update it")
    return {
        "flatten": timeit(lambda: batch.flatten(), repeats),
        "preprocess.transform": timeit(lambda: pre.transform(arrays), repeats),
        "network_input (clip, f32, frozen)": timeit(lambda: _network_input(scorer, features), repeats),
        "onnxruntime session.run": timeit(lambda: session.run(None, {name: x}), repeats),
        "recon.astype(f64)": timeit(lambda: recon32.astype(np.float64), repeats),
        "error (scaled, weighted, f64)": timeit(lambda: _error(scorer, features, recon), repeats),
        "pa.array(scores)": timeit(lambda: pa.array(scores, type=pa.float64()), repeats),
    }


def transform_parts(pre: Preprocessor, batch: pa.StructArray, repeats: int) -> dict[str, float]:
    """Inside Preprocessor.transform: per-column numpy conversion, per-column maths, hstack."""
    from adspark.features import _as_float

    numeric = pre.numeric_ or []
    arrays = batch.flatten()
    cols = [_as_float(a) for a in arrays]
    blocks = [spec.transform(c, pre.on_missing)[0][:, None] for spec, c in zip(numeric, cols, strict=True)]
    return {
        "_as_float x30": timeit(lambda: [_as_float(a) for a in arrays], repeats),
        "NumericSpec.transform x30": timeit(
            lambda: [spec.transform(c, pre.on_missing) for spec, c in zip(numeric, cols, strict=True)], repeats
        ),
        "np.hstack of 30 (n,1) blocks": timeit(lambda: np.hstack(blocks), repeats),
    }


class Vectorized:
    """A candidate rewrite of AutoencoderScorer.score_arrays for numeric-only models.

    The same maths as adspark (robust scaling, knee-signed-log, clip, frozen inputs,
    scaled and weighted squared error), but on one (n, d) matrix with whole-matrix
    numpy ops, the weighted sum as one matrix-vector product, and (with `reuse`)
    preallocated buffers instead of fresh multi-MB temporaries on every batch. Batches
    with missing values would take a masked np.where branch (not needed here).
    """

    def __init__(self, scorer: AutoencoderScorer, reuse: bool, f32_error: bool = False) -> None:
        numeric = scorer.preprocessor.numeric_ or []
        self.scorer, self.reuse, self.f32 = scorer, reuse, f32_error
        self.median = np.array([s.median for s in numeric])
        self.inv_scale = 1.0 / np.array([s.scale for s in numeric])
        self.log_idx = np.array([i for i, s in enumerate(numeric) if s.log], dtype=np.int64)
        self.knee = np.array([getattr(s, "knee", 1.0) for s in numeric])[self.log_idx]
        self.clip = scorer.preprocessor.clip
        weights = getattr(scorer, "weights", None)
        d = len(numeric)
        w = weights if weights is not None else np.full(d, 1.0 / d)
        self.w = w / np.square(scorer.error_scale)  # sum_j w_j ((f_j - r_j) / s_j)^2 = (f - r)^2 @ (w / s^2)
        self.frozen = getattr(scorer, "frozen", np.zeros(0, dtype=np.int64))
        self.frozen_values = getattr(scorer, "frozen_values", np.zeros(0, dtype=np.float32))
        self.buffers: dict[tuple[str, int], np.ndarray] = {}

    def _buf(self, name: str, shape: tuple[int, int], dtype: type) -> np.ndarray:
        if not self.reuse:
            return np.empty(shape, dtype=dtype)
        key = (name, shape[0])
        if key not in self.buffers:
            self.buffers[key] = np.empty(shape, dtype=dtype)
        return self.buffers[key]

    def features(self, batch: pa.StructArray) -> np.ndarray:
        n, d = len(batch), batch.type.num_fields
        z = self._buf("z", (n, d), np.float64)
        for j, arr in enumerate(batch.flatten()):
            z[:, j] = arr.to_numpy(zero_copy_only=False)
        if not np.isfinite(z).all():
            raise ValueError("missing values: take the masked path")
        np.subtract(z, self.median, out=z)
        np.multiply(z, self.inv_scale, out=z)
        if self.log_idx.size:
            zl = z[:, self.log_idx]
            z[:, self.log_idx] = np.sign(zl) * self.knee * np.log1p(np.abs(zl) / self.knee)
        return z

    def score(self, batch: pa.StructArray) -> np.ndarray:
        f = self.features(batch)
        x = self._buf("x", f.shape, np.float32)
        np.clip(f, -self.clip, self.clip, out=x, casting="same_kind")
        if self.frozen.size:
            x[:, self.frozen] = self.frozen_values
        total = np.zeros(len(f))
        for session, name in zip(self.scorer.sessions, self.scorer.input_names, strict=True):
            recon = session.run(None, {name: x})[0]
            if self.f32:
                d = np.subtract(f, recon, out=self._buf("d32", f.shape, np.float32), casting="same_kind")
                np.square(d, out=d)
                total += d @ self.w.astype(np.float32)
            else:
                d = np.subtract(f, recon, out=self._buf("d", f.shape, np.float64))
                np.square(d, out=d)
                total += d @ self.w
        return total / len(self.scorer.sessions)


def candidates(scorer: AutoencoderScorer, batch: pa.StructArray, repeats: int) -> dict[str, float]:
    """Whole loop body: adspark as is vs rewrites, seconds per batch."""
    fresh, reuse, f32 = Vectorized(scorer, reuse=False), Vectorized(scorer, reuse=True), Vectorized(scorer, True, True)

    def adspark() -> np.ndarray:
        return scorer.score_arrays(batch.flatten())

    ref = adspark()
    for label, v in (("vectorized", fresh), ("vectorized+buffers", reuse), ("vectorized+buffers, f32 error", f32)):
        got = v.score(batch)
        rel = float(np.max(np.abs(got - ref) / np.maximum(np.abs(ref), 1e-12)))
        print(f"  check {label}: max relative difference to adspark's scores {rel:.2e}")
    return {
        "adspark score_arrays (as is)": timeit(adspark, repeats),
        "vectorized, GEMV error, f64": timeit(lambda: fresh.score(batch), repeats),
        "  + preallocated buffers": timeit(lambda: reuse.score(batch), repeats),
        "  + buffers, f32 error": timeit(lambda: f32.score(batch), repeats),
    }


def batch_sizes(scorer: AutoencoderScorer, path: str, features: list[str], sizes: list[int], repeats: int) -> dict:
    """adspark's score_arrays per row at several Arrow batch sizes (maxRecordsPerBatch)."""
    out = {}
    for n in sizes:
        batch = load_batch(path, features, n)
        sec = timeit(lambda b=batch: scorer.score_arrays(b.flatten()), max(5, repeats * 10_000 // n))
        out[n] = {"ms_per_batch": round(sec * 1e3, 3), "us_per_1k_rows": round(sec / n * 1e6 * 1e3, 1)}
    return out


def report(title: str, steps: dict[str, float], rows: int, additive: bool = True) -> None:
    total = sum(steps.values())
    print(f"\n{title} ({rows:,}-row batch)")
    for k, v in steps.items():
        share = f"{v / total:6.1%}" if additive else "      "
        print(f"  {k:<40} {v * 1e3:8.3f} ms  {share}  {rows / v / 1e6:8.2f} M rows/s")
    if additive:
        print(f"  {'sum':<40} {total * 1e3:8.3f} ms          {rows / total / 1e6:8.2f} M rows/s")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-dir", required=True)
    p.add_argument("--input", required=True)
    p.add_argument("--batch-rows", type=int, default=10_000)
    p.add_argument("--repeats", type=int, default=200)
    p.add_argument("--json", help="also write the numbers here")
    args = p.parse_args()

    artifact = load_artifact(args.model_dir)
    scorer = build_scorer(artifact.manifest, artifact.files)
    assert isinstance(scorer, AutoencoderScorer)
    features = [c["name"] for c in artifact.input_schema]
    batch = load_batch(args.input, features, args.batch_rows)
    n = len(batch)

    steps = adspark_steps(scorer, batch, args.repeats)
    report("adspark UDF body, step by step", steps, n)
    parts = transform_parts(scorer.preprocessor, batch, args.repeats)
    report("inside Preprocessor.transform", parts, n)
    print("\ncandidate rewrites of the whole loop body:")
    cands = candidates(scorer, batch, args.repeats)
    report("whole loop body per batch (alternatives)", cands, n, additive=False)
    sizes = batch_sizes(scorer, args.input, features, [1_000, 10_000, 50_000, 100_000], args.repeats)
    print("\nadspark score_arrays by batch size (spark.sql.execution.arrow.maxRecordsPerBatch):")
    for size, v in sizes.items():
        print(f"  {size:>7} rows: {v['ms_per_batch']:8.2f} ms/batch, {v['us_per_1k_rows']:7.1f} us per 1k rows")
    if args.json:
        ms = {k: round(v * 1e3, 4) for k, v in {**steps, **parts, **cands}.items()}
        Path(args.json).write_text(json.dumps({"batch_rows": n, "ms": ms, "batch_sizes": sizes}, indent=2))


if __name__ == "__main__":
    main()
