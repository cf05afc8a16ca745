"""What the reconstruction families (autoencoder, GAN) share: frozen features and the error scale.

The LSTM finds its frozen numeric inputs with the same `frozen_mask`.

A feature constant over the training sample (a missing indicator of a column
with no nulls, a category bucket that never fired) carries no information. The
network sees it pinned at its training value and is not sized for it, and the
scorer compares it with that value rather than with the network's output, so a
row where it moves tonight is scored by the move alone, not by output noise.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from adspark.config import KneeFeatures, TypicalError

# A numeric feature at one value in at least this share of the training rows is "rarely moving": a pixel
# that is mostly blank, a count that is mostly 0, a 1-10 grade. Its typical error is tiny, so the knee
# applies to it (bench/README.md, "The error knee"). Continuous columns have almost no ties and are never
# softened.
RARE_SHARE = 0.5


def frozen_mask(x: np.ndarray) -> np.ndarray:
    """Features constant over the sample (all of them when the sample is empty)."""
    if not len(x):
        return np.zeros(x.shape[1], dtype=bool)
    return np.all(x == x[:1], axis=0)


def informative_width(frozen: np.ndarray) -> int:
    """How many features the network has to learn: the input width sizes its default layers."""
    return max(1, int(np.count_nonzero(~frozen)))


def pin_frozen(recon: np.ndarray, frozen: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The reconstruction with the frozen features set to their training values (in place)."""
    recon[:, frozen] = values
    return recon


# typical_error "trimmed" (the default): the rows with the largest overall error in the unit of the root mean
# square, UNIT_TRIM of them, leave the average, so a third of anomalies in the sample (breastw, wdbc) or a
# tail of rare transactions does not set the unit it is measured in; a feature's unit may shrink at most
# UNIT_SHRINK-fold (in squared error), so a spike column, whose normal rows now and then miss by far and are
# the rows trimmed, keeps most of its unit (bench/README.md, "The error unit").
UNIT_TRIM = 0.15
UNIT_SHRINK = 5.0

# typical_error "auto": a feature's errors look like a contaminated sample, not noise, when at least AUTO_SHARE
# of the training rows miss by more than FAR median errors (Gaussian errors put 0.7% of rows there; at 3 median
# errors it would be 4%, which a 5% contamination plus noise straddles). A rarely-moving feature is off its usual
# value in up to half the rows by definition (a pixel under a stroke), so it needs RARE_AUTO_SHARE: a
# third of breastw's grades miss by far, a tenth of a digit's stroke pixels (bench/README.md, "The error unit").
FAR = 4.0
AUTO_SHARE = 0.1
RARE_AUTO_SHARE = 0.25


def typical_squared_error(
    sq_errors: np.ndarray, statistic: TypicalError, rare: np.ndarray | None = None, weights: np.ndarray | None = None
) -> np.ndarray:
    """Per-feature typical squared error of the training rows (rows x features in, features out).

    "rms" takes the mean (its root is the root mean square). "trimmed" takes the mean over the rows whose
    weighted sum of squared errors in rms units (`weights`, the scorer's feature weights; 1 if None) is
    below its 1 - UNIT_TRIM quantile, and at least the mean / UNIT_SHRINK. "median" takes the median: a
    third of the rows far off (the anomalies of a heavily contaminated sample) do not inflate it, so their
    errors stay large in its units; but a feature whose normal rows now and then miss by a lot (a spike
    column) gets a small scale and those rows score high. "auto" takes the median for the features where
    many rows miss by far (AUTO_SHARE beyond FAR median errors, RARE_AUTO_SHARE for the `rare` ones, a
    boolean mask) and the mean for the others, whose few far misses look like noise.
    """
    mean = np.mean(sq_errors, axis=0)
    if statistic == "rms":
        return mean
    if statistic == "trimmed":
        w = np.ones(len(mean)) if weights is None else weights
        overall = (sq_errors / np.maximum(mean, 1e-12)) @ w
        kept = overall <= np.quantile(overall, 1.0 - UNIT_TRIM)
        return np.maximum(np.mean(sq_errors[kept], axis=0), mean / UNIT_SHRINK)
    median = np.median(sq_errors, axis=0)
    if statistic == "median":
        return median
    far = np.mean(sq_errors > FAR**2 * np.maximum(median, 1e-12), axis=0)
    share = np.full(len(mean), AUTO_SHARE) if rare is None else np.where(rare, RARE_AUTO_SHARE, AUTO_SHARE)
    return np.where(far >= share, median, mean)


def error_scale(typical: np.ndarray, frozen: np.ndarray) -> np.ndarray:
    """Per-feature typical training error (the root of typical_squared_error), floored.

    The floor keeps a feature's error from being amplified into noise. It is a
    tenth of the median over the informative features (at least 0.01); a frozen
    feature has no training error and gets the floor, so a value it never took in
    training scores high.
    """
    informative = typical[~frozen] if np.any(~frozen) else typical
    floor = max(1e-2, 0.1 * float(np.median(informative))) if len(informative) else 1e-2
    return np.maximum(typical, floor)


def softened_inputs(
    features: np.ndarray, frozen: np.ndarray, which: KneeFeatures, numeric: int
) -> list[int]:
    """The features whose error the knee softens: "all" that moved in training, or only the "rare" ones.

    A frozen feature is never softened: a move there is new, not rare. "rare" keeps the numeric value
    features (the first `numeric` of Preprocessor.transform) whose most common training value holds at
    least RARE_SHARE of the rows. Missing indicators and category buckets follow them and are binary, so
    their mode always holds half the rows; a category that changes is a whole break (a new merchant on a
    card), not a small move, and keeps its squared error.
    """
    keep = ~frozen
    if which == "rare":
        keep[numeric:] = False
        if len(features):
            keep[:numeric] &= stats.mode(features[:, :numeric], axis=0, keepdims=False).count >= RARE_SHARE * len(
                features
            )
    return np.flatnonzero(keep).tolist()


def knee_inputs(
    features: np.ndarray,
    frozen: np.ndarray,
    which: KneeFeatures,
    statistic: TypicalError,
    numeric: int,
) -> tuple[list[int], np.ndarray | None]:
    """The features the knee softens (softened_inputs), and the rarely-moving mask the "auto" unit reads.

    The mask is None for the other units. With the default `which="rare"` both are the same features,
    so the mode over the training sample is taken once.
    """
    softened = softened_inputs(features, frozen, which, numeric)
    if statistic != "auto":
        return softened, None
    mask = np.zeros(features.shape[1], dtype=bool)
    mask[softened if which == "rare" else softened_inputs(features, frozen, "rare", numeric)] = True
    return softened, mask
