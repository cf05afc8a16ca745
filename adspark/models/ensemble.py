"""Ensemble (`model.kind: ensemble`): the mean of the members' rank-transformed scores.

Every member listed in `model.members` (default autoencoder and gan) is
trained on the same sample with the same frozen preprocessing. Then each member
scores the sample through the executors' onnxruntime path, and 1001 quantiles
of those scores (levels 0, 0.001, ..., 1) are frozen in the manifest: at
scoring time a member's score becomes its quantile level in the training
distribution, interpolated (adspark.runtime.ensemble), and the ensemble score
is the mean level. Rank-averaging makes members on different scales count
equally (an autoencoder error of 40 and a forest score of 0.7 mean nothing to
each other) and is the usual way to combine outlier detectors (Aggarwal and
Sathe, "Theoretical foundations and algorithms for outlier ensembles", 2015).
The threshold is then set on the averaged score, as for any kind.

The same members mechanism (`fit_members`) trains a reconstruction family once
per loss (`model.loss: mse+welsch`, `fit_per_loss`): the autoencoder's networks
combine by the geometric mean of their errors, which are on one unit already
(adspark.runtime.ensemble), and the GAN's, whose scores are centred, by rank.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from adspark.config import JobConfig
from adspark.errors import TrainingError
from adspark.models import detector_class
from adspark.models.base import Detector
from adspark.models.losses import network_losses
from adspark.runtime import build_scorer
from adspark.runtime.ensemble import Combine

N_QUANTILES = 1001


def member_config(cfg: JobConfig, kind: str, **update: Any) -> JobConfig:
    """The job config as the member sees it: the same everything, its own kind (and any other `model` keys)."""
    return cfg.model_copy(update={"model": cfg.model.model_copy(update={"kind": kind, **update})})


def fit_members(
    owner: str,
    members: list[tuple[str, Detector]],
    features: np.ndarray,
    combine: Combine = "rank",
    prefix: bool = False,
) -> tuple[dict[str, Any], dict[str, bytes], dict[str, Any]]:
    """Train each named member on one feature matrix: the `model` section of the `owner` kind's model.

    The section lists the members (`onnx_files`, `members`, `combine`). For `rank`, each member scores
    the sample and its training-score distribution is frozen with it. A `geometric` combination needs no
    member scores: Detector.fit scores the combined model on the sample and refuses non-finite scores
    (a member's non-finite or negative score makes the geometric mean so). Also returns the files and each
    member's training record by name. With `prefix`, a member's files are renamed `<name>_<file>`, for
    members of one kind whose files would share names.
    """
    specs: list[dict[str, Any]] = []
    files: dict[str, bytes] = {}
    training: dict[str, Any] = {}
    for name, member in members:
        spec, member_files = member._fit_network(features)
        if prefix:
            spec = {**spec, "onnx_files": [f"{name}_{f}" for f in spec["onnx_files"]]}
            member_files = {f"{name}_{f}": data for f, data in member_files.items()}
        if set(member_files) & set(files):
            raise TrainingError(f"{owner}: member {name!r} reuses a file name of another member")
        entry: dict[str, Any] = {"kind": member.kind, "model": spec}
        if combine == "rank":
            scores = build_scorer(member._manifest_core(spec), member_files).score_features(features)
            if not np.all(np.isfinite(scores)):
                raise TrainingError(f"{owner}: member {name!r} gave non-finite scores; no artifact was written")
            entry["quantiles"] = np.quantile(scores, np.linspace(0.0, 1.0, N_QUANTILES)).tolist()
        specs.append(entry)
        files.update(member_files)
        training[name] = member.training_
    return {"onnx_files": sorted(files), "members": specs, "combine": combine}, files, training


def fit_per_loss(detector: Detector, features: np.ndarray, combine: Combine) -> tuple[dict[str, Any], dict[str, bytes]]:
    """A reconstruction family with `model.loss: mse+welsch`: one network (set) per loss, combined.

    Each loss's network is the family's own, trained with that loss alone, on the same seed and the
    shared preprocessing; its files are named after the loss.
    """
    losses = network_losses(detector.cfg.model.row_loss())
    members: list[tuple[str, Detector]] = []
    for loss in losses:
        cfg = member_config(detector.cfg, detector.kind, loss=loss)
        p = detector.preprocessor
        member = type(detector)(cfg, p.numeric_columns, p.categorical_columns)
        member.preprocessor = p  # fitted once, shared by every member
        members.append((loss, member))
    spec, files, training = fit_members(detector.kind, members, features, combine, prefix=True)
    detector.training_ = {"members": training}
    return {**spec, "loss": "+".join(losses)}, files


class EnsembleDetector(Detector):
    kind = "ensemble"

    def __init__(self, cfg: JobConfig, numeric: list[str], categorical: list[str]) -> None:
        super().__init__(cfg, numeric, categorical)
        self.members_: list[Detector] = []
        for kind in cfg.model.members:
            # the members train with the ensemble's loss (by default mse: one network each)
            member = detector_class(kind)(member_config(cfg, kind, loss=cfg.model.row_loss()), numeric, categorical)
            member.preprocessor = self.preprocessor  # fitted once, shared by every member
            self.members_.append(member)

    def _fit_table(self, table: pa.Table) -> tuple[dict[str, Any], dict[str, bytes]]:
        features = self.preprocessor.transform(self._arrays(table))
        spec, files, training = fit_members(self.kind, [(m.kind, m) for m in self.members_], features)
        self.training_ = {"members": training}
        return spec, files
