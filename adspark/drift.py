"""Drift: reference distributions frozen at training, compared with each night's data.

At training, `build_reference` summarises the training sample (numpy only):
- per numeric feature: decile bin edges, each bin's share (plus a null bucket), the
  null rate, and 100 evenly spaced quantiles that stand in for the sample in a KS test;
- per categorical feature: the shares of its most frequent values, of all other
  values together, and of nulls;
- the training scores: decile edges and shares, a fine histogram for the report, and
  the expected flag rate (the share of training scores above the threshold).
It is stored in the artifact's manifest under `reference`.

At scoring, a `Tally` counts the night's feature values at the reference's edges:
per numeric feature the PSI bins, the nulls, and the values below and at or below
each reference quantile; per categorical feature each known value, all others and
the nulls. Counts add up, so every kind counts inside the scoring UDF, on the
batches the executors already hold (no second scan of the input); the counts
travel back per partition in a Spark accumulator (`PartitionCounts`), keyed by
partition so a retried task replaces its counts instead of adding them twice.
The sequence scorer skips the context rows its blocks repeat. From the counts,
`Tally.compare` gives per feature the PSI over the reference bins (null bucket
included), the two-sample KS statistic against the reference quantiles (exact:
both ECDFs only step at those points or between them, where the counts bound
them), and the null rates. The score's PSI and the flag rate come from the
written output (its score column counted at the score edges).

Given the run's score threshold, the same pass counts the rows above it (the flagged
rows) by the first entry of their reasons, the column that contributed most to each
score: the run page's "what drives tonight's flags" costs no read of the written
reasons. A top_k run has no threshold before scoring, so it is not counted.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

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


def score_reference(scores: np.ndarray, threshold: float | None) -> dict[str, Any]:
    """The training scores' deciles and histogram; a top_k model (no threshold) has no expected flag rate."""
    scores = np.asarray(scores, dtype=np.float64)
    edges = np.unique(np.quantile(scores, np.arange(1, PSI_BINS) / PSI_BINS)).tolist()
    hist_edges = histogram_edges(scores, threshold)
    return {
        "edges": edges,
        "shares": _shares(_bin_counts(scores, edges)),
        "hist_edges": hist_edges,
        "hist_shares": _shares(_bin_counts(scores, hist_edges)),
        "expected_flag_rate": None if threshold is None else float(np.mean(scores > threshold)),
        "threshold": None if threshold is None else float(threshold),
    }


def histogram_edges(scores: np.ndarray, threshold: float | None) -> list[float]:
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


def first_reason_counts(reasons: pa.Array) -> dict[str, int]:
    """Rows per column named first in their reasons (the largest share of the score); rows without reasons
    are not counted."""
    first = pc.struct_field(pc.list_element(reasons, 0), [0])
    return {str(v["values"]): int(v["counts"]) for v in pc.value_counts(first).to_pylist() if v["values"] is not None}


def build_reference(
    sample: pa.Table, numeric: list[str], categorical: list[str], scores: np.ndarray, threshold: float | None,
    flag_reasons: dict[str, int] | None = None,
) -> dict[str, Any]:
    """The training sample's distributions, frozen in the manifest under `reference`; with `flag_reasons`
    (the sample's rows above the threshold by first reason), the flag mix tonight's is compared with."""
    reference: dict[str, Any] = {
        "version": REFERENCE_VERSION,
        "sample_rows": int(sample.num_rows),
        "numeric": {c: numeric_reference(_numeric(sample.column(c))) for c in numeric if c in sample.column_names},
        "categorical": {
            c: categorical_reference(_strings(sample.column(c))) for c in categorical if c in sample.column_names
        },
        "score": score_reference(scores, threshold),
    }
    if flag_reasons is not None:
        reference["flag_reasons"] = dict(flag_reasons)
    return reference


# --------------------------------------------------------------------------- comparison (scoring)


class Tally:
    """Counts of feature values at the reference's edges, added batch by batch, then compared.

    `features` names the arrays `count` receives, in order (numeric as float64,
    categorical as strings, as they cross into Python); the ones without a
    reference are skipped. numpy and pyarrow only: it runs on executors.
    """

    def __init__(self, reference: dict[str, Any], features: list[str], threshold: float | None = None) -> None:
        numeric, categorical = reference.get("numeric", {}), reference.get("categorical", {})
        self.numeric = [(i, name, np.asarray(numeric[name]["edges"], dtype=np.float64),
                         np.asarray(numeric[name]["quantiles"], dtype=np.float64))
                        for i, name in enumerate(features) if name in numeric]
        self.categorical = [(i, name, list(categorical[name]["values"]))
                            for i, name in enumerate(features) if name in categorical]
        self.reference = {"numeric": numeric, "categorical": categorical}
        widths = [len(e) + 2 + 2 * len(q) for _, _, e, q in self.numeric] + [len(v) + 2 for _, _, v in self.categorical]
        self.offsets = np.cumsum([0, *widths])
        # With a threshold, the rows above it are also counted by the first column of their reasons: one slot
        # per feature, then one for a flagged row without a reason (a kind that does not attribute its score).
        self.threshold = threshold
        self.reason_names = list(features) if threshold is not None else []
        self._reason_slot = {name: i for i, name in enumerate(self.reason_names)}
        self.flags_at = int(self.offsets[-1])
        self.width = self.flags_at + (len(self.reason_names) + 1 if threshold is not None else 0)

    def zero(self) -> np.ndarray:
        return np.zeros(self.width, dtype=np.float64)

    def count(self, arrays: list[pa.Array] | list[pa.ChunkedArray], scores: np.ndarray | None = None,
              reasons: pa.Array | None = None) -> np.ndarray:
        """One batch's counts (a flat vector; `compare` and `flag_reasons` read it back).

        The numeric columns are sorted once, together; every count is then a
        search of the reference's few edges in a sorted column. `scores` and
        `reasons` are the batch's results, for the flagged rows' first reasons.
        """
        features = self._count_features(arrays)
        if self.threshold is None:
            return features
        return np.concatenate([features, self._count_flags(scores, reasons)])

    def _count_flags(self, scores: np.ndarray | None, reasons: pa.Array | None) -> np.ndarray:
        """Rows above the threshold (the flag's own test) by the first column of their reasons."""
        out = np.zeros(len(self.reason_names) + 1, dtype=np.float64)
        if scores is None:
            return out
        above = np.asarray(scores) > self.threshold
        flagged = int(np.count_nonzero(above))
        if not flagged:
            return out
        if reasons is not None:
            for name, count in first_reason_counts(reasons.filter(pa.array(above))).items():
                slot = self._reason_slot.get(name)
                if slot is not None:
                    out[slot] += count
        out[-1] = flagged - out[:-1].sum()
        return out

    def flag_reasons(self, counts: np.ndarray) -> dict[str, int] | None:
        """Flagged rows per first reason (most first, zero counts left out); None without a threshold or when
        a flagged row had no reason."""
        if self.threshold is None:
            return None
        block = np.asarray(counts, dtype=np.float64)[self.flags_at :]
        if block[-1] > 0:
            return None
        ranked = sorted(((int(c), n) for n, c in zip(self.reason_names, block[:-1], strict=True) if c > 0),
                        key=lambda cn: (-cn[0], cn[1]))
        return {n: c for c, n in ranked}

    def _count_features(self, arrays: list[pa.Array] | list[pa.ChunkedArray]) -> np.ndarray:
        parts: list[np.ndarray] = []
        if self.numeric:
            values = np.vstack([_numeric(arrays[i]) for i, _, _, _ in self.numeric])
            finite = np.count_nonzero(np.isfinite(values), axis=1)
            ordered = np.sort(values, axis=1)  # NaN (every missing value) sorts last
            for row, (_, _, edges, quantiles) in enumerate(self.numeric):
                col = ordered[row, : finite[row]]
                at_edges = np.searchsorted(col, edges, side="right")
                bins = np.diff(np.concatenate([[0], at_edges, [col.size]]))
                parts += [bins, np.array([values.shape[1] - col.size]), np.searchsorted(col, quantiles, side="left"),
                          np.searchsorted(col, quantiles, side="right")]
        for i, _, known in self.categorical:
            arr = arrays[i].cast(pa.string())
            found = {str(v["values"]): int(v["counts"]) for v in pc.value_counts(arr).to_pylist()
                     if v["values"] is not None}
            counts = [found.get(v, 0) for v in known]
            nulls = arr.null_count
            parts.append(np.asarray([*counts, len(arr) - nulls - sum(counts), nulls], dtype=np.float64))
        return (np.concatenate([np.asarray(p, dtype=np.float64) for p in parts]) if parts
                else np.zeros(self.flags_at, dtype=np.float64))

    def rows(self, counts: np.ndarray) -> int:
        """How many rows the counts cover (every feature sees every row: the first one's bins tell)."""
        if self.numeric:
            return int(np.sum(counts[: len(self.numeric[0][2]) + 2]))
        return int(np.sum(counts[: len(self.categorical[0][2]) + 2])) if self.categorical else 0

    def compare(self, counts: np.ndarray) -> dict[str, dict[str, Any]]:
        """Per feature: psi, ks (numeric only), null_rate, null_rate_reference, null_rate_change."""
        out: dict[str, dict[str, Any]] = {}
        block = iter(np.split(np.asarray(counts, dtype=np.float64)[: self.flags_at], self.offsets[1:-1]))
        for _, name, edges, quantiles in self.numeric:
            c, ref = next(block), self.reference["numeric"][name]
            bins, k = len(edges) + 2, len(quantiles)
            shares, below, at_or_below = c[:bins], c[bins : bins + k], c[bins + k :]
            rows, finite = float(shares.sum()), float(shares[:-1].sum())
            out[name] = {
                "psi": psi(ref["shares"], shares),
                "ks": _ks(quantiles, below, at_or_below, finite),
                **_null_rates(ref, 1.0 - finite / rows if rows else 0.0),
            }
        for _, name, _ in self.categorical:
            c, ref = next(block), self.reference["categorical"][name]
            expected = [ref["values"][v] for v in ref["values"]] + [ref["other"], ref["null_rate"]]
            rows = float(c.sum())
            out[name] = {"psi": psi(expected, c), "ks": None, **_null_rates(ref, float(c[-1]) / rows if rows else 0.0)}
        return out


def _ks(quantiles: np.ndarray, below: np.ndarray, at_or_below: np.ndarray, n: float) -> float | None:
    """sup |F_night - F_ref| with F_ref the ECDF of the reference quantiles (scipy's ks_2samp statistic).

    Both ECDFs are steps; F_ref only steps at the quantiles and F_night is monotone
    between them, so the supremum is reached at a quantile, from the left or the right.
    """
    if not len(quantiles) or not n:
        return None
    k = len(quantiles)
    ref_left = np.searchsorted(quantiles, quantiles, side="left") / k
    ref_right = np.searchsorted(quantiles, quantiles, side="right") / k
    left = np.abs(below / n - ref_left)
    right = np.abs(at_or_below / n - ref_right)
    return float(max(left.max(), right.max()))


class PartitionCounts:
    """A Spark accumulator's parameter: {partition: counts}; a partition counted again replaces its entry.

    A retried or recomputed task sees the same rows, so replacing keeps every row counted once.
    """

    def zero(self, value: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
        return {}

    def addInPlace(self, a: dict[int, np.ndarray], b: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
        a.update(b)
        return a


def _null_rates(ref: dict[str, Any], current: float) -> dict[str, float]:
    return {
        "null_rate": current,
        "null_rate_reference": float(ref["null_rate"]),
        "null_rate_change": current - float(ref["null_rate"]),
    }


def compare_features(reference: dict[str, Any], sample: pa.Table) -> dict[str, dict[str, Any]]:
    """Per feature of a table (a sample of the night): psi, ks (numeric only), null rates."""
    tally = Tally(reference, sample.column_names)
    return tally.compare(tally.count(sample.columns))


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
