"""Drift: reference distributions frozen at training, compared with each night's data.

At training, `build_reference` summarises the training sample (numpy only):
- per numeric feature: decile bin edges, each bin's share (plus a null bucket), the
  null rate, and 100 evenly spaced quantiles that stand in for the sample in a KS test;
- per categorical feature: the shares of its most frequent values, of all other
  values together, and of nulls;
- the training scores: decile edges and shares, a fine histogram for the report, and
  the expected flag rate (the share of training scores above the threshold).
It is stored in the artifact's manifest under `reference`.

At scoring, `sample_input` collects a seeded sample (a hash of the feature values
picks the rows, so the sample does not depend on partitioning) of at most
`monitor.sample_rows` rows, and `compare_features` computes, per feature, the PSI
over the reference bins (null bucket included), the two-sample KS statistic against
the reference quantiles (scipy), and the null rates. The score's PSI and the flag
rate come from the written output (`score_counts_exprs` over its score column).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import pyarrow as pa

log = logging.getLogger("adspark.drift")

REFERENCE_VERSION = 1
PSI_BINS = 10
KS_POINTS = 100
TOP_VALUES = 20
HIST_BINS = 40
PSI_FLOOR = 1e-4  # a bin empty on one side would make PSI infinite
OTHER = "<other>"
NULL = "<null>"


# --------------------------------------------------------------------------- statistics


def psi(expected: np.ndarray | list[float], actual: np.ndarray | list[float]) -> float:
    """Population stability index: sum over bins of (a - e) * ln(a / e), shares floored at 1e-4."""
    e = np.maximum(np.asarray(expected, dtype=np.float64), PSI_FLOOR)
    a = np.maximum(np.asarray(actual, dtype=np.float64), PSI_FLOOR)
    e, a = e / e.sum(), a / a.sum()
    return float(np.sum((a - e) * np.log(a / e)))


def _shares(counts: np.ndarray) -> list[float]:
    total = float(counts.sum())
    return (counts / total).tolist() if total else [0.0] * len(counts)


def _bin_counts(values: np.ndarray, edges: list[float]) -> np.ndarray:
    """Counts per bin (-inf, e0], (e0, e1], ..., (e_last, inf) of the finite values."""
    idx = np.searchsorted(np.asarray(edges, dtype=np.float64), values, side="left")
    return np.bincount(idx, minlength=len(edges) + 1).astype(np.float64)


def _numeric(arr: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """float64 values with null, NaN and +-inf as NaN (all count as missing, as in preprocessing)."""
    x = np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.float64)
    return np.where(np.isfinite(x), x, np.nan)


def _strings(arr: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(arr.cast(pa.string()).to_pylist(), dtype=object)


# --------------------------------------------------------------------------- reference (training)


def numeric_reference(x: np.ndarray) -> dict[str, Any]:
    finite = x[np.isfinite(x)]
    null_rate = 1.0 - finite.size / x.size if x.size else 0.0
    if not finite.size:
        return {"edges": [], "shares": [0.0, 1.0], "null_rate": null_rate, "quantiles": []}
    inner = np.quantile(finite, np.arange(1, PSI_BINS) / PSI_BINS)
    edges = np.unique(inner).tolist()
    counts = np.append(_bin_counts(finite, edges), x.size - finite.size)
    quantiles = np.quantile(finite, (np.arange(KS_POINTS) + 0.5) / KS_POINTS)
    return {"edges": edges, "shares": _shares(counts), "null_rate": null_rate, "quantiles": quantiles.tolist()}


def categorical_reference(values: np.ndarray) -> dict[str, Any]:
    is_null = np.array([v is None for v in values], dtype=bool)
    present = values[~is_null].astype(str)
    uniq, counts = np.unique(present, return_counts=True)
    order = np.argsort(-counts, kind="stable")[:TOP_VALUES]
    total = max(values.size, 1)
    top = {str(uniq[i]): float(counts[i]) / total for i in order}
    other = float(counts.sum() - sum(counts[i] for i in order)) / total
    return {"values": top, "other": other, "null_rate": float(is_null.sum()) / total}


def score_reference(scores: np.ndarray, threshold: float) -> dict[str, Any]:
    scores = np.asarray(scores, dtype=np.float64)
    edges = np.unique(np.quantile(scores, np.arange(1, PSI_BINS) / PSI_BINS)).tolist()
    hist_edges = histogram_edges(scores, threshold)
    return {
        "edges": edges,
        "shares": _shares(_bin_counts(scores, edges)),
        "hist_edges": hist_edges,
        "hist_shares": _shares(_bin_counts(scores, hist_edges)),
        "expected_flag_rate": float(np.mean(scores > threshold)),
        "threshold": float(threshold),
    }


def histogram_edges(scores: np.ndarray, threshold: float) -> list[float]:
    """Edges for the score histogram: asinh-spaced (log-like for large scores, fine for negatives).

    They span the training scores and the threshold, and half as far again beyond on the
    asinh scale, so tonight's outliers still land inside; anything beyond goes to the
    last (overflow) bin.
    """
    return edges_between(float(np.min(scores)), float(np.max(scores)), asinh_width(scores), threshold)


def edges_between(lo: float, hi: float, width: float, threshold: float | None = None) -> list[float]:
    """`histogram_edges` from the scores' min, max and median absolute value."""
    if threshold is not None and math.isfinite(threshold):
        lo, hi = min(lo, threshold), max(hi, threshold)
    width = width if math.isfinite(width) and width > 1e-12 else 1.0
    u_lo, u_hi = math.asinh(lo / width), math.asinh(hi / width)
    u_hi += max(0.5 * (u_hi - u_lo), 1.0)
    return (width * np.sinh(np.linspace(u_lo, u_hi, HIST_BINS - 1))).tolist()


def asinh_width(scores: np.ndarray) -> float:
    """The linear region of the asinh scale: the median absolute score (or 1)."""
    w = float(np.median(np.abs(scores))) if np.size(scores) else 1.0
    return w if math.isfinite(w) and w > 1e-12 else 1.0


def build_reference(
    sample: pa.Table, numeric: list[str], categorical: list[str], scores: np.ndarray, threshold: float
) -> dict[str, Any]:
    """The training sample's distributions, frozen in the manifest under `reference`."""
    return {
        "version": REFERENCE_VERSION,
        "sample_rows": int(sample.num_rows),
        "numeric": {c: numeric_reference(_numeric(sample.column(c))) for c in numeric if c in sample.column_names},
        "categorical": {
            c: categorical_reference(_strings(sample.column(c))) for c in categorical if c in sample.column_names
        },
        "score": score_reference(scores, threshold),
    }


# --------------------------------------------------------------------------- comparison (scoring)


def _ks(current: np.ndarray, quantiles: list[float]) -> float | None:
    if not quantiles or not current.size:
        return None
    from scipy.stats import ks_2samp

    return float(ks_2samp(current, np.asarray(quantiles), method="asymp").statistic)


def compare_numeric(ref: dict[str, Any], x: np.ndarray) -> dict[str, Any]:
    finite = x[np.isfinite(x)]
    counts = np.append(_bin_counts(finite, ref["edges"]), x.size - finite.size)
    null_rate = 1.0 - finite.size / x.size if x.size else 0.0
    return {
        "psi": psi(ref["shares"], counts),
        "ks": _ks(finite, ref["quantiles"]),
        **_null_rates(ref, null_rate),
    }


def compare_categorical(ref: dict[str, Any], values: np.ndarray) -> dict[str, Any]:
    known = list(ref["values"])
    is_null = np.array([v is None for v in values], dtype=bool)
    present = values[~is_null].astype(str)
    uniq, counts = np.unique(present, return_counts=True)
    found = dict(zip(uniq.tolist(), counts.tolist(), strict=True))
    actual = [found.get(v, 0) for v in known]
    actual += [present.size - sum(actual), int(is_null.sum())]
    expected = [ref["values"][v] for v in known] + [ref["other"], ref["null_rate"]]
    null_rate = float(is_null.sum()) / values.size if values.size else 0.0
    return {"psi": psi(expected, actual), "ks": None, **_null_rates(ref, null_rate)}


def _null_rates(ref: dict[str, Any], current: float) -> dict[str, float]:
    return {
        "null_rate": current,
        "null_rate_reference": float(ref["null_rate"]),
        "null_rate_change": current - float(ref["null_rate"]),
    }


def compare_features(reference: dict[str, Any], sample: pa.Table) -> dict[str, dict[str, Any]]:
    """Per feature: psi, ks (numeric only), null_rate, null_rate_reference, null_rate_change."""
    out: dict[str, dict[str, Any]] = {}
    for name, ref in reference.get("numeric", {}).items():
        out[name] = compare_numeric(ref, _numeric(sample.column(name)))
    for name, ref in reference.get("categorical", {}).items():
        out[name] = compare_categorical(ref, _strings(sample.column(name)))
    return out


def drifted(features: dict[str, dict[str, Any]], max_psi: float) -> list[str]:
    """Feature columns whose PSI exceeds `max_psi`, worst first."""
    over = [(f["psi"], name) for name, f in features.items() if f["psi"] > max_psi]
    return [name for _, name in sorted(over, reverse=True)]


def score_edges(reference: dict[str, Any]) -> list[float]:
    """Every edge the output's score column is counted at: the PSI deciles, then the histogram's."""
    score = reference["score"]
    return [*score["edges"], *score["hist_edges"]]


def score_drift(reference: dict[str, Any], cumulative: list[int], rows: int, flagged: int) -> dict[str, Any]:
    """Score PSI, flag rate and histogram from the output's counts of scores <= each of `score_edges`."""
    score = reference["score"]
    k = len(score["edges"])

    def counts(cum: list[int]) -> np.ndarray:
        c = np.asarray([*cum, rows], dtype=np.float64)
        return np.diff(c, prepend=0.0)

    decile, hist = counts(cumulative[:k]), counts(cumulative[k:])
    rate = flagged / rows if rows else 0.0
    return {
        "score_psi": psi(score["shares"], decile) if rows else 0.0,
        "flag_rate": {"current": rate, "expected": score["expected_flag_rate"]},
        "score_histogram": {
            "edges": score["hist_edges"],
            "reference": score["hist_shares"],
            "current": _shares(hist),
        },
    }
