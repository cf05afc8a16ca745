"""Executor-side scorer of the ensemble kind: every member's score, rank-transformed, averaged.

Each member (a row-wise kind: autoencoder, gan, iforest) is scored by its own
scorer, built through the kind registry, on the one preprocessed feature matrix:
one ONNX pass per member. A member's raw score goes through that member's
training-score distribution, frozen in the manifest as a grid of quantiles:
the score becomes its (interpolated) quantile level in [0, 1], so members on
different scales count equally. Above the training maximum the level keeps
growing at the slope of the top percentile, so the most extreme rows stay
ordered instead of tying at 1. The ensemble score is the mean level.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from adspark.runtime.base import Scorer, build_scorer

TAIL_LEVEL = 0.99  # the slope above the training maximum is that of the top (1 - TAIL_LEVEL) of the grid


class RankTransform:
    """Raw score -> quantile level of the training scores (monotone, float64, row by row)."""

    def __init__(self, quantiles: list[float]) -> None:
        grid = np.asarray(quantiles, dtype=np.float64)
        levels = np.linspace(0.0, 1.0, len(grid))
        # Equal quantiles (a plateau of tied training scores) share their mean level.
        self.xs, inverse = np.unique(grid, return_inverse=True)
        self.ys = np.bincount(inverse, levels) / np.bincount(inverse)
        top = float(np.interp(TAIL_LEVEL, levels, grid))
        span = self.xs[-1] - top
        self.tail_slope = (1.0 - TAIL_LEVEL) / span if span > 0 else 1.0

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        level = np.interp(scores, self.xs, self.ys)
        above = scores > self.xs[-1]
        level[above] = self.ys[-1] + (scores[above] - self.xs[-1]) * self.tail_slope
        return level


class EnsembleScorer(Scorer):
    def __init__(self, manifest: dict[str, Any], files: dict[str, bytes]) -> None:
        super().__init__(manifest, files)
        self.members: list[tuple[Scorer, RankTransform]] = []
        for member in manifest["model"]["members"]:
            core = {"kind": member["kind"], "preprocessing": manifest["preprocessing"], "model": member["model"]}
            scorer = build_scorer(core, {name: files[name] for name in member["model"]["onnx_files"]})
            self.members.append((scorer, RankTransform(member["quantiles"])))

    def member_scores(self, features: np.ndarray) -> np.ndarray:
        """Raw scores, one column per member."""
        return np.column_stack([scorer.score_features(features) for scorer, _ in self.members])

    def score_features(self, features: np.ndarray) -> np.ndarray:
        levels = [rank(scorer.score_features(features)) for scorer, rank in self.members]
        return np.mean(levels, axis=0)
