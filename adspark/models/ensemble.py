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
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from adspark.config import JobConfig
from adspark.errors import TrainingError
from adspark.models import detector_class
from adspark.models.base import Detector
from adspark.runtime import build_scorer

N_QUANTILES = 1001


def member_config(cfg: JobConfig, kind: str) -> JobConfig:
    """The job config as the member sees it: the same everything, its own kind."""
    return cfg.model_copy(update={"model": cfg.model.model_copy(update={"kind": kind})})


class EnsembleDetector(Detector):
    kind = "ensemble"

    def __init__(self, cfg: JobConfig, numeric: list[str], categorical: list[str]) -> None:
        super().__init__(cfg, numeric, categorical)
        self.members_: list[Detector] = []
        for kind in cfg.model.members:
            member = detector_class(kind)(member_config(cfg, kind), numeric, categorical)
            member.preprocessor = self.preprocessor  # fitted once, shared by every member
            self.members_.append(member)

    def _fit_table(self, table: pa.Table) -> tuple[dict[str, Any], dict[str, bytes]]:
        features = self.preprocessor.transform(self._arrays(table))
        specs: list[dict[str, Any]] = []
        files: dict[str, bytes] = {}
        training: dict[str, Any] = {}
        for member in self.members_:
            spec, member_files = member._fit_network(features)
            if set(member_files) & set(files):
                raise TrainingError(f"ensemble: member {member.kind!r} reuses a file name of another member")
            scores = build_scorer(member._manifest_core(spec), member_files).score_features(features)
            if not np.all(np.isfinite(scores)):
                raise TrainingError(f"ensemble: member {member.kind!r} gave non-finite scores; no artifact was written")
            quantiles = np.quantile(scores, np.linspace(0.0, 1.0, N_QUANTILES))
            specs.append({"kind": member.kind, "model": spec, "quantiles": quantiles.tolist()})
            files.update(member_files)
            training[member.kind] = member.training_
        self.training_ = {"members": training}
        return {"onnx_files": sorted(files), "members": specs}, files
