"""Detector families, one module each, found through the registry below.

A new kind is one module under adspark/models/ and one line in DETECTORS (plus
its executor-side scorer: one module under adspark/runtime/ and one line in its
registry). Families are imported on first use, so importing this package never
imports Keras.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from adspark.config import JobConfig
    from adspark.models.base import Detector

# kind -> "module:class" of its detector
DETECTORS = {
    "autoencoder": "adspark.models.autoencoder:AutoencoderDetector",
    "gan": "adspark.models.gan:GanDetector",
    "lstm": "adspark.models.lstm:LstmDetector",
    "iforest": "adspark.models.iforest:IsolationForestDetector",
    "ensemble": "adspark.models.ensemble:EnsembleDetector",
}
KINDS = tuple(DETECTORS)


def detector_class(kind: str) -> type[Detector]:
    if kind not in DETECTORS:
        raise ValueError(f"unknown model kind {kind!r} (known: {', '.join(KINDS)})")
    module, name = DETECTORS[kind].split(":")
    cls: type[Detector] = getattr(importlib.import_module(module), name)
    return cls


def make_detector(cfg: JobConfig, numeric: list[str], categorical: list[str]) -> Detector:
    return detector_class(cfg.model.kind)(cfg, numeric, categorical)
