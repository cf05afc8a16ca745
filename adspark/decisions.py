"""Decisions on anomaly scores: thresholds, and the frozen training-score distribution behind percentiles.

Pure numpy (scipy only inside the driver-side fits): the driver summarises the
training sample's scores once (`ScoreSummary`, frozen in the artifact's manifest)
and every threshold method is fitted from that summary, so `adspark score` can
apply a different threshold block than the one the model was trained with and
get exactly what training would have set. Executors only apply: `percentile`.

Methods (`threshold.method`):
- `contamination`: the (1 - value) quantile of the training scores;
- `fixed`: `value` itself;
- `mad`: median + value x 1.4826 x MAD of the training scores;
- `pot`: peaks over threshold (SPOT, Siffer et al., KDD 2017): a generalised
  Pareto distribution fitted (Grimshaw's method, with the exponential case as a
  candidate) to the excesses over the `level` quantile, and the score whose
  exceedance probability is `value`;
- `top_k`: exactly `value` rows per segment, the highest scores; a cut computed
  in Spark at scoring time (adspark.scoring), so it has no number here.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from adspark.errors import TrainingError

METHODS = ("contamination", "fixed", "mad", "pot", "top_k")
# Probabilities of the frozen quantile grid: 0, 0.001, ..., 1.
GRID_POINTS = 1001
# The highest scores are kept exactly (for tail fits at another level and exact upper quantiles):
# this share of the sample, at most TOP_MAX values.
TOP_SHARE = 0.05
TOP_MAX = 20_000
# A tail fit needs at least this many excesses over its initial threshold.
MIN_EXCESSES = 10
DEFAULT_LEVEL = 0.98
MAD_SCALE = 1.4826  # makes the MAD a consistent estimate of a Gaussian's standard deviation
_XI_ZERO = 1e-6  # |shape| below this is the exponential case
_BELOW_ONE = float(np.nextafter(1.0, 0.0))


@dataclass(frozen=True)
class Tail:
    """A generalised Pareto fit to the excesses of the scores over `threshold` (the `level` quantile)."""

    level: float
    threshold: float
    shape: float
    scale: float
    excesses: int
    method: str

    def quantile(self, q: float) -> float:
        """The score with exceedance probability q (q < 1 - level)."""
        ratio = q / (1.0 - self.level)
        if abs(self.shape) < _XI_ZERO:
            return self.threshold - self.scale * math.log(ratio)
        return self.threshold + self.scale / self.shape * (ratio ** (-self.shape) - 1.0)

    def survival(self, excess: np.ndarray) -> np.ndarray:
        """P(score - threshold > excess | score > threshold), for excess >= 0."""
        y = np.maximum(excess, 0.0) / self.scale
        if abs(self.shape) < _XI_ZERO:
            return np.exp(-y)
        base = np.maximum(1.0 + self.shape * y, 0.0)
        with np.errstate(divide="ignore"):
            return np.power(base, -1.0 / self.shape)


def _gpd_loglik(y: np.ndarray, shape: float, scale: float) -> float:
    if scale <= 0 or not math.isfinite(scale):
        return -math.inf
    if abs(shape) < _XI_ZERO:
        return float(-len(y) * math.log(scale) - y.sum() / scale)
    z = 1.0 + shape * y / scale
    if np.any(z <= 0):
        return -math.inf
    return float(-len(y) * math.log(scale) - (1.0 + 1.0 / shape) * np.log(z).sum())


def _grimshaw_candidates(y: np.ndarray) -> list[tuple[float, float]]:
    """(shape, scale) at the roots of Grimshaw's equation u(x) v(x) = 1, plus the exponential fit.

    With x = shape / scale, the likelihood's stationary points solve
    u(x) v(x) = 1, u(x) = mean(1 / (1 + x y)), v(x) = 1 + mean(log(1 + x y)), and
    shape = v(x) - 1. Roots lie in (-1/max(y), 0) and (0, 2 (mean - min) / min^2];
    each interval is scanned on a grid and every sign change refined with brentq.
    Shapes below -1 are not candidates (the likelihood is unbounded there).
    """
    from scipy.optimize import brentq

    ymin, ymax, ymean = float(y.min()), float(y.max()), float(y.mean())
    # The exponential (shape 0) and the uniform edge (shape -1, where the likelihood peaks at scale = max):
    # the two boundary cases a root search misses, for tails near zero shape and short tails.
    candidates = [(0.0, ymean), (-1.0, ymax * (1.0 + 1e-9))]

    def w(x: float) -> float:
        s = 1.0 + x * y
        return float(np.mean(1.0 / s) * (1.0 + np.mean(np.log(s))) - 1.0)

    eps = 1e-8 / ymax
    intervals = [np.linspace(-1.0 / ymax + eps, -eps, 200)]
    upper = 2.0 * (ymean - max(ymin, 1e-12 * ymax)) / max(ymin, 1e-12 * ymax) ** 2
    if upper > eps:
        intervals.append(np.geomspace(eps, upper, 400))
    for grid in intervals:
        values = np.array([w(x) for x in grid])
        for i in np.flatnonzero(np.sign(values[:-1]) * np.sign(values[1:]) < 0):
            try:
                x = brentq(w, grid[i], grid[i + 1], xtol=1e-14 / ymax, maxiter=200)
            except (ValueError, RuntimeError):
                continue
            shape = float(np.mean(np.log1p(x * y)))
            if x != 0 and math.isfinite(shape):
                candidates.append((shape, shape / x))
    return candidates


def fit_gpd(excesses: np.ndarray) -> tuple[float, float, str]:
    """Maximum-likelihood (shape, scale) of a generalised Pareto for positive excesses, and the method used.

    Grimshaw's roots and the exponential case compete on likelihood; when none is
    valid, scipy's numerical MLE is tried. A fit that is still not finite raises
    TrainingError: a tail is never silently replaced by something else.
    """
    y = np.asarray(excesses, dtype=np.float64)
    if y.size < MIN_EXCESSES or not np.all(np.isfinite(y)) or float(y.max()) <= 0:
        raise TrainingError(f"cannot fit a tail: {y.size} finite positive excesses (need {MIN_EXCESSES})")
    best = max(_grimshaw_candidates(y), key=lambda c: _gpd_loglik(y, *c))
    method = "grimshaw" if abs(best[0]) >= _XI_ZERO else "exponential"
    if not math.isfinite(_gpd_loglik(y, *best)):
        from scipy.stats import genpareto

        shape, _, scale = genpareto.fit(y, floc=0.0)
        best, method = (float(shape), float(scale)), "scipy_mle"
        if not math.isfinite(_gpd_loglik(y, *best)):
            raise TrainingError("cannot fit a generalised Pareto tail to the training scores' excesses")
    return best[0], best[1], method


@dataclass
class ScoreSummary:
    """The training sample's scores, frozen: a quantile grid, the top scores exactly, median, MAD, a tail fit."""

    n: int
    quantiles: list[float]  # at probabilities 0, 1/(GRID_POINTS-1), ..., 1
    top: list[float]  # the highest scores, ascending
    median: float
    mad: float
    tail: Tail | None = None
    grid_points: int = GRID_POINTS
    _q: np.ndarray = field(init=False, repr=False, compare=False)
    _top: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._q = np.asarray(self.quantiles, dtype=np.float64)
        self._top = np.asarray(self.top, dtype=np.float64)

    @classmethod
    def from_scores(cls, scores: np.ndarray, level: float = DEFAULT_LEVEL) -> ScoreSummary:
        s = np.sort(np.asarray(scores, dtype=np.float64))
        if s.size == 0 or not np.all(np.isfinite(s)):
            raise TrainingError("cannot summarise the training scores: they are empty or not finite")
        median = float(np.median(s))
        keep = min(s.size, max(min(s.size, 1000), min(TOP_MAX, math.ceil(TOP_SHARE * s.size))))
        grid = np.quantile(s, np.linspace(0.0, 1.0, GRID_POINTS))
        summary = cls(int(s.size), grid.tolist(), s[s.size - keep :].tolist(), median,
                      float(np.median(np.abs(s - median))))
        try:
            summary.tail = summary.fit_tail(level)
        except TrainingError:
            summary.tail = None  # percentiles above the sample then stop at its maximum
        return summary

    # --- quantiles and the tail -------------------------------------------------
    def quantile(self, p: float) -> float:
        """np.quantile(training scores, p) (linear): exact in the kept top, interpolated on the grid below it."""
        h = (self.n - 1) * p
        lo = math.floor(h)
        first_top = self.n - len(self._top)
        if lo >= first_top:
            i = lo - first_top
            upper = self._top[min(i + 1, len(self._top) - 1)]
            return float(self._top[i] + (h - lo) * (upper - self._top[i]))
        probs = np.linspace(0.0, 1.0, self.grid_points)
        return float(np.interp(p, probs, self._q))

    def fit_tail(self, level: float) -> Tail:
        """The GPD fit to the excesses over the `level` quantile (needs them all among the kept top scores)."""
        u = self.quantile(level)
        if len(self._top) < self.n and self._top[0] > u:
            kept = len(self._top) / self.n
            raise TrainingError(f"threshold.level {level} is below what the model keeps of its training scores "
                                f"(the top {kept:.1%}); use a level of at least {1 - kept:.3f} or retrain")
        y = self._top[self._top > u] - u
        if y.size < MIN_EXCESSES:
            raise TrainingError(
                f"threshold.method 'pot' needs at least {MIN_EXCESSES} training scores above the threshold.level "
                f"{level} quantile; the sample has {y.size} (lower threshold.level or train on more rows)")
        try:
            shape, scale, method = fit_gpd(y)
        except TrainingError as err:
            raise TrainingError(f"threshold.method 'pot' at threshold.level {level}: {err}") from None
        return Tail(level, u, shape, scale, int(y.size), method)

    def percentile(self, scores: np.ndarray) -> np.ndarray:
        """Share of the training sample scoring below each score, in [0, 1).

        Up to the tail's initial threshold: the quantile grid, interpolated. Above
        it: 1 - (1 - level) x the fitted tail's survival, so scores beyond the
        sample's maximum stay ordered and below 1 (up to double precision).
        """
        s = np.asarray(scores, dtype=np.float64)
        probs = np.linspace(0.0, 1.0, self.grid_points)
        out = np.interp(s, self._q, probs)
        if self.tail is not None:
            above = s > self.tail.threshold
            if np.any(above):
                surv = self.tail.survival(s[above] - self.tail.threshold)
                out[above] = 1.0 - (1.0 - self.tail.level) * surv
        return np.minimum(out, _BELOW_ONE)

    # --- frozen form ------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "grid_points": self.grid_points,
            "quantiles": self.quantiles,
            "top": self.top,
            "median": self.median,
            "mad": self.mad,
            "tail": asdict(self.tail) if self.tail else None,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ScoreSummary:
        tail = Tail(**state["tail"]) if state.get("tail") else None
        return cls(int(state["n"]), list(state["quantiles"]), list(state["top"]), float(state["median"]),
                   float(state["mad"]), tail, int(state.get("grid_points", GRID_POINTS)))


@dataclass(frozen=True)
class Decision:
    """A threshold method with its parameters and, except for top_k, the score above which a row is flagged."""

    method: str
    value: float
    level: float = DEFAULT_LEVEL
    by: tuple[str, ...] = ()
    threshold: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    # Frames persisted to apply the decision (top_k's scored rows); release() unpersists them once written.
    cached: list[Any] = field(default_factory=list, repr=False, compare=False)

    def release(self) -> None:
        while self.cached:
            self.cached.pop().unpersist()

    def record(self) -> dict[str, Any]:
        out: dict[str, Any] = {"method": self.method, "value": self.value}
        if self.method == "pot":
            out["level"] = self.level
        if self.method == "top_k":
            out["by"] = list(self.by)
        out["threshold"] = self.threshold
        return {**out, **self.details}


def decide(method: str, value: float, summary: ScoreSummary, level: float = DEFAULT_LEVEL,
           by: list[str] | tuple[str, ...] = ()) -> Decision:
    """Fit a threshold method on the training-score summary."""
    if method == "fixed":
        return Decision(method, float(value), threshold=float(value))
    if method == "contamination":
        return Decision(method, value, threshold=summary.quantile(1.0 - value))
    if method == "mad":
        thr = summary.median + value * MAD_SCALE * summary.mad
        return Decision(method, value, threshold=thr, details={"median": summary.median, "mad": summary.mad})
    if method == "pot":
        if not 0.0 < value < 1.0 - level:
            raise TrainingError(f"threshold.value {value} must be in (0, 1 - threshold.level = {1 - level:.6g}) "
                                "for method 'pot'")
        tail = summary.fit_tail(level)
        return Decision(method, value, level=level, threshold=tail.quantile(value),
                        details={"tail": asdict(tail)})
    if method == "top_k":
        return Decision(method, value, by=tuple(by))
    raise ValueError(f"unknown threshold method {method!r}")


def fit_threshold(method: str, value: float, train_scores: np.ndarray, level: float = DEFAULT_LEVEL) -> float:
    """The threshold a method sets on raw training scores (for every method but top_k)."""
    decision = decide(method, value, ScoreSummary.from_scores(train_scores, level), level)
    if decision.threshold is None:
        raise ValueError(f"threshold.method {method!r} has no score threshold; it is applied at scoring time")
    return decision.threshold


def flag(scores: np.ndarray, threshold: float) -> np.ndarray:
    """A row is anomalous when its score is strictly above the threshold."""
    return np.asarray(scores) > threshold


def top_k_flags(scores: np.ndarray, k: int) -> np.ndarray:
    """The k highest scores (ties: the earlier row first), for in-memory use; Spark does it by window."""
    order = np.lexsort((np.arange(len(scores)), -np.asarray(scores)))
    out = np.zeros(len(scores), dtype=bool)
    out[order[: int(k)]] = True
    return out
