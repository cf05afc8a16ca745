"""The detector contract shared by every family.

`fit(table)` learns preprocessing and a network from a training sample, exports
the network to ONNX and scores the sample through the very same onnxruntime path
the executors use, so `threshold_` is set on exactly the scores executors
produce. Then `decision_function` (higher = more anomalous) and `predict`.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import numpy as np
import pyarrow as pa

from adspark.config import JobConfig
from adspark.decisions import Decision, ScoreSummary, decide, flag, top_k_flags
from adspark.drift import first_reason_counts
from adspark.errors import NotFittedError, TrainingError
from adspark.features import Preprocessor
from adspark.native_log import DEFAULT_TF_LOG_LEVEL, filtered_native_logs
from adspark.runtime import Scorer, build_scorer
from adspark.runtime.base import reasons_array

log = logging.getLogger("adspark.train")


def import_keras() -> Any:
    """Keras with TensorFlow's start-up chatter silenced; only ever on the driver."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", DEFAULT_TF_LOG_LEVEL)
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras

    return keras


class Detector:
    kind = "base"

    def __init__(self, cfg: JobConfig, numeric: list[str], categorical: list[str]) -> None:
        self.cfg = cfg
        p = cfg.preprocess
        self.preprocessor = Preprocessor(
            numeric,
            categorical,
            p.on_missing,
            p.transform,
            dict(p.transforms),
            p.clip,
            p.max_categories,
            p.onehot_max,
            scaling=p.scaling,
        )
        self.scorer_: Scorer | None = None
        self.threshold_: float | None = None
        self.score_summary_: ScoreSummary | None = None
        self.decision_: Decision | None = None
        self.files_: dict[str, bytes] = {}
        self.training_: dict[str, Any] = {}

    # --- to implement per family -------------------------------------------
    def _fit_network(self, features: np.ndarray) -> tuple[dict[str, Any], dict[str, bytes]]:
        """Train on the feature matrix; return the manifest's `model` section and the ONNX files."""
        raise NotImplementedError

    def _fit_table(self, table: pa.Table) -> tuple[dict[str, Any], dict[str, bytes]]:
        """Train on the (preprocessor-fitted) sample; row-wise families work on the feature matrix."""
        return self._fit_network(self.preprocessor.transform(self._arrays(table)))

    def _score_table(self, scorer: Scorer, table: pa.Table) -> np.ndarray:
        return scorer.score_arrays(self._arrays(table))

    def _arrays(self, table: pa.Table) -> list[pa.ChunkedArray]:
        return [table.column(c) for c in self.preprocessor.columns]

    # --- the shared contract --------------------------------------------------
    def fit(self, table: pa.Table) -> Detector:
        if table.num_rows < 2:
            raise TrainingError(f"cannot train on {table.num_rows} row(s): the training sample needs at least 2")
        start = time.perf_counter()
        self.preprocessor.fit(table)
        with filtered_native_logs():
            model_spec, self.files_ = self._fit_table(table)
        self.scorer_ = build_scorer(self._manifest_core(model_spec), self.files_)
        train_scores = self._score_table(self.scorer_, table)
        if not np.all(np.isfinite(train_scores)):
            raise TrainingError("training produced non-finite scores; the model was not saved")
        t = self.cfg.threshold
        self.score_summary_ = ScoreSummary.from_scores(train_scores, t.level)
        self.decision_ = decide(t.method, t.value, self.score_summary_, t.level, t.by)
        self.threshold_ = self.decision_.threshold
        self.train_scores_ = train_scores  # for the drift reference (adspark/drift.py)
        self.training_ = {
            "sample_rows": int(table.num_rows),
            "n_features": len(self.preprocessor.feature_names_),
            "seconds": round(time.perf_counter() - start, 3),
            "score_quantiles": _quantiles(train_scores),
            **self.training_,
        }
        return self

    def _manifest_core(self, model_spec: dict[str, Any]) -> dict[str, Any]:
        return {"kind": self.kind, "preprocessing": self.preprocessor.to_state(), "model": model_spec}

    def _fitted(self) -> tuple[Scorer, float | None]:
        if self.scorer_ is None or self.score_summary_ is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted: call fit() first")
        return self.scorer_, self.threshold_

    def decision_function(self, table: pa.Table) -> np.ndarray:
        scorer, _ = self._fitted()
        return self._score_table(scorer, table)

    def first_reasons(self, table: pa.Table, scores: np.ndarray) -> dict[str, int] | None:
        """The rows of `table` whose `scores` are above the threshold, counted by the first entry of their
        reasons (the column contributing most); None for top_k or a kind that does not attribute its score."""
        scorer, threshold = self._fitted()
        if threshold is None:
            return None
        above = flag(scores, threshold)
        _, parts, _ = scorer.explain_arrays(self._arrays(table.filter(pa.array(above))))
        return None if parts is None else self._first_reason_counts(parts)

    def _first_reason_counts(self, parts: np.ndarray) -> dict[str, int]:
        """Rows of column parts [n, columns] by their first reason, by the executors' own rule (reasons_array)."""
        return first_reason_counts(reasons_array(self.preprocessor.columns, parts, None, 1, len(parts)))

    def predict(self, table: pa.Table) -> np.ndarray:
        _, threshold = self._fitted()
        scores = self.decision_function(table)
        if threshold is None:  # top_k: the table's own highest scores
            return top_k_flags(scores, int(self.cfg.threshold.value))
        return flag(scores, threshold)

    def manifest_(self) -> dict[str, Any]:
        """Everything the artifact's manifest records about this fitted detector."""
        scorer, _ = self._fitted()
        assert self.score_summary_ is not None and self.decision_ is not None
        return {
            **scorer.manifest,
            "threshold": self.decision_.record(),
            "score_summary": self.score_summary_.to_state(),
            "training": self.training_,
        }


def _quantiles(scores: np.ndarray) -> dict[str, float]:
    qs = [0.5, 0.9, 0.99, 0.999]
    return {f"q{q}": float(v) for q, v in zip(qs, np.quantile(scores, qs), strict=True)}
