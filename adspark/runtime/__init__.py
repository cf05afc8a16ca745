"""Executor-side scoring: numpy, pyarrow and onnxruntime only (never TensorFlow, pyspark.sql or pydantic).

The registry below is the one place that maps a model kind to its scorer: a new
kind is one module under adspark/runtime/ (importing only runtime.base) and one
line here.
"""

from __future__ import annotations

from adspark.runtime.base import (
    SCORERS,
    Counting,
    Scorer,
    batch_scorer,
    build_scorer,
    cached_scorer,
    counted,
    onnx_session,
    unpack_payload,
)
from adspark.runtime.ensemble import EnsembleScorer
from adspark.runtime.forest import ForestScorer
from adspark.runtime.sequence import LstmScorer
from adspark.runtime.tabular import AutoencoderScorer, GanScorer

SCORERS.update(
    autoencoder=AutoencoderScorer,
    gan=GanScorer,
    lstm=LstmScorer,
    iforest=ForestScorer,
    ensemble=EnsembleScorer,
)
KNOWN_KINDS = tuple(SCORERS)

__all__ = [
    "KNOWN_KINDS",
    "SCORERS",
    "AutoencoderScorer",
    "Counting",
    "EnsembleScorer",
    "ForestScorer",
    "GanScorer",
    "LstmScorer",
    "Scorer",
    "batch_scorer",
    "build_scorer",
    "cached_scorer",
    "counted",
    "onnx_session",
    "unpack_payload",
]
