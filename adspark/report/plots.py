"""Figures as embedded PNG data URIs (matplotlib, Agg backend, no display needed)."""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

WIDTH, HEIGHT, DPI = 7.6, 3.1, 100
BLUE, ORANGE, RED, GREY = "#3b6ea8", "#e08a1e", "#c62828", "#8a93a3"


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def figure(height: float = HEIGHT, width: float = WIDTH) -> tuple[Any, Any]:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(width, height), dpi=DPI)
    ax.grid(True, color="#e4e7ec", linewidth=0.7)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return fig, ax


def to_data_uri(fig: Any) -> str:
    plt = _pyplot()
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=DPI)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _asinh_scale(ax: Any, edges: Sequence[float] | np.ndarray) -> None:
    e = np.asarray(edges, dtype=np.float64)
    width = float(np.median(np.abs(e))) / 4 if e.size else 1.0
    ax.set_xscale("asinh", linear_width=width if math.isfinite(width) and width > 0 else 1.0)


def score_histogram(edges: Sequence[float], series: Mapping[str, Sequence[float]], threshold: float | None,
                    title: str, log_y: bool = False) -> str:
    """Shares per score bin, one step line per series (bins: (-inf, e0], ..., (e_last, inf))."""
    fig, ax = figure()
    e = np.asarray(edges, dtype=np.float64)
    if e.size >= 2:
        step = e[-1] - e[-2]
        bounds = np.concatenate([[e[0] - (e[1] - e[0])], e, [e[-1] + step]])
        for (label, shares), colour in zip(series.items(), (GREY, BLUE, ORANGE, RED), strict=False):
            s = np.asarray(shares, dtype=np.float64)
            if s.size == bounds.size - 1 and s.sum() > 0:
                ax.stairs(s, bounds, label=label, color=colour, linewidth=1.6,
                          fill=label == next(iter(series)), alpha=0.35 if label == next(iter(series)) else 1.0)
        _asinh_scale(ax, e)
        shown = [np.asarray(v, dtype=np.float64) for v in series.values()]
        below = any(v.size and v[0] > 0 for v in shown)  # anything in the bin under the lowest edge
        ax.set_xlim(bounds[0] if below else e[0], bounds[-1])
    if threshold is not None and math.isfinite(threshold):
        ax.axvline(threshold, color=RED, linestyle="--", linewidth=1.2, label=f"threshold {threshold:.4g}")
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel("anomaly_score (asinh scale)")
    ax.set_ylabel("share of rows")
    ax.set_title(title, fontsize=11)
    ax.legend(fontsize=9, frameon=False)
    return to_data_uri(fig)


def bars(labels: Sequence[str], values: Sequence[float], title: str, xlabel: str,
         limit: float | None = None, highlight: Sequence[bool] | None = None) -> str:
    """Horizontal bars, one per label (most important first, at the top)."""
    n = len(labels)
    fig, ax = figure(height=max(1.8, 0.28 * n + 1.0))
    colours = [RED if highlight is not None and highlight[i] else BLUE for i in range(n)]
    y = np.arange(n)[::-1]
    ax.barh(y, np.asarray(values, dtype=np.float64), color=colours, height=0.7)
    ax.set_yticks(y, [_short(lbl) for lbl in labels], fontsize=8)
    if limit is not None:
        ax.axvline(limit, color=RED, linestyle="--", linewidth=1.2, label=f"limit {limit:g}")
        ax.legend(fontsize=9, frameon=False, loc="lower right")
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=11)
    return to_data_uri(fig)


def _short(label: str, n: int = 28) -> str:
    return label if len(label) <= n else label[: n - 1] + "…"


def curves(series: Mapping[str, Sequence[float]], title: str, xlabel: str, ylabel: str, log_y: bool = False) -> str:
    """Line plots against the index (epochs): loss curves."""
    fig, ax = figure()
    for label, values in series.items():
        v = np.asarray(values, dtype=np.float64)
        ax.plot(np.arange(1, v.size + 1), v, marker="o", markersize=3, linewidth=1.4, label=label)
    if log_y and all(np.all(np.asarray(v) > 0) for v in series.values()):
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=11)
    ax.legend(fontsize=8, frameon=False, ncol=2)
    return to_data_uri(fig)


def xy(series: Mapping[str, tuple[Sequence[float], Sequence[float]]], title: str, xlabel: str, ylabel: str,
       diagonal: bool = False, square: bool = False) -> str:
    """Curves given as (x, y) point lists: ROC and precision-recall."""
    fig, ax = figure(height=3.6, width=4.4 if square else WIDTH)
    for label, (xs, ys) in series.items():
        ax.plot(xs, ys, linewidth=1.6, label=label)
    if diagonal:
        ax.plot([0, 1], [0, 1], color=GREY, linestyle=":", linewidth=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=11)
    ax.legend(fontsize=8, frameon=False, loc="lower right" if diagonal else "upper right")
    return to_data_uri(fig)
