"""Executor-side scorer of models made of members: the ensemble kind, and a family trained once per loss.

Each member (a row-wise kind: autoencoder, gan, iforest) is scored by its own
scorer, built through the kind registry, on the one preprocessed feature matrix:
one ONNX pass per member. The members' scores are combined one of two ways
(the manifest's `combine`):

- `rank` (the ensemble kind; a GAN with `model.loss: mse+welsch`): a member's
  raw score goes through that member's training-score distribution, frozen in
  the manifest as a grid of quantiles: the score becomes its (interpolated)
  quantile level in [0, 1], so members on different scales count equally.
  Above the training maximum the level keeps growing at the slope of the top
  percentile, so the most extreme rows stay ordered instead of tying at 1. The
  score is the mean level.
- `geometric` (the autoencoder with `model.loss: mse+welsch`): the geometric
  mean of the members' scores. Both are reconstruction errors in typical
  training errors, so the score stays in that unit, extreme rows keep their
  distance, and a constant factor on either network's errors would not change
  the order of the rows.

Reasons: when every member attributes its score, each member's column shares are
weighted (by its level for `rank`, equally for `geometric`) and averaged, so the
parts sum to the score; a member without attribution (iforest) leaves the model
without reasons.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from adspark.runtime.base import Explanation, Scorer, build_scorer, shares

Combine = Literal["rank", "geometric"]
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
        self.combine: Combine = manifest["model"].get("combine", "rank")  # written before geometric existed: rank
        self.members: list[tuple[Scorer, RankTransform | None]] = []
        for member in manifest["model"]["members"]:
            core = {"kind": member["kind"], "preprocessing": manifest["preprocessing"], "model": member["model"]}
            scorer = build_scorer(core, {name: files[name] for name in member["model"]["onnx_files"]})
            self.members.append((scorer, RankTransform(member["quantiles"]) if self.combine == "rank" else None))

    def member_scores(self, features: np.ndarray) -> np.ndarray:
        """Raw scores, one column per member."""
        return np.column_stack([scorer.score_features(features) for scorer, _ in self.members])

    def score_features(self, features: np.ndarray) -> np.ndarray:
        return self._combined([scorer.score_features(features) for scorer, _ in self.members])[0]

    def _combined(self, raw: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        """The score, and each member's weight in it (its level for rank; the score itself for geometric)."""
        if self.combine == "geometric":
            score = np.prod(raw, axis=0) ** (1.0 / len(raw))
            return score, [score] * len(raw)
        levels = [rank(r) for r, (_, rank) in zip(raw, self.members, strict=True) if rank is not None]
        return np.mean(levels, axis=0), levels

    def explain_features(self, features: np.ndarray) -> Explanation:
        explained = [scorer.explain_features(features) for scorer, _ in self.members]
        score, weights = self._combined([raw for raw, _, _ in explained])
        if any(parts is None or expected is None for _, parts, expected in explained):
            return score, None, None
        # each member's column shares, weighted by its level (rank) or equally (geometric): parts sum to the score
        parts = [w[:, None] * shares(p) for w, (_, p, _) in zip(weights, explained, strict=True) if p is not None]
        expected = [e for _, _, e in explained if e is not None]
        return score, np.mean(parts, axis=0), np.mean(expected, axis=0)
