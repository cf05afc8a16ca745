"""Executor-side scoring: numpy, pyarrow and onnxruntime only (never TensorFlow, pyspark.sql or pydantic).

The registry below is the one place that maps a model kind to its scorer: a new
kind is one module under adspark/runtime/ (importing only runtime.base) and one
line here.
"""

from __future__ import annotations

from adspark.runtime.base import (
    SCORERS,
    Scorer,
    batch_scorer,
    build_scorer,
    cached_scorer,
    onnx_session,
    unpack_payload,
)
from adspark.runtime.sequence import LstmScorer
from adspark.runtime.tabular import AutoencoderScorer, GanScorer

SCORERS.update(
    autoencoder=AutoencoderScorer,
    gan=GanScorer,
    lstm=LstmScorer,
)
KNOWN_KINDS = tuple(SCORERS)

__all__ = [
    "KNOWN_KINDS",
    "SCORERS",
    "AutoencoderScorer",
    "GanScorer",
    "LstmScorer",
    "Scorer",
    "batch_scorer",
    "build_scorer",
    "cached_scorer",
    "onnx_session",
    "unpack_payload",
]
