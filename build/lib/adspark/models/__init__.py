"""Detector families, one module each. Importing a family imports Keras lazily."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from adspark.config import JobConfig
    from adspark.models.base import Detector

KINDS = ("autoencoder", "gan", "lstm")


def make_detector(cfg: JobConfig, numeric: list[str], categorical: list[str]) -> Detector:
    if cfg.model.kind == "autoencoder":
        from adspark.models.autoencoder import AutoencoderDetector

        return AutoencoderDetector(cfg, numeric, categorical)
    if cfg.model.kind == "gan":
        from adspark.models.gan import GanDetector

        return GanDetector(cfg, numeric, categorical)
    if cfg.model.kind == "lstm":
        from adspark.models.lstm import LstmDetector

        return LstmDetector(cfg, numeric, categorical)
    raise ValueError(f"unknown model kind {cfg.model.kind!r}")
