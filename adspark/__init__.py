"""adspark: batch anomaly scoring for Apache Spark.

The library API (see README, "Use it from your PySpark code"):

    import adspark
    model = adspark.fit(df, config)        # train on a seeded sample of df
    scored = model.transform(df)           # df + anomaly_score / is_anomaly, lazily
    model.save("models/fraud")             # the artifact `adspark train` writes
    model = adspark.load("models/fraud")   # verified like `adspark score` does

Spark ML stages: adspark.ml.AnomalyDetector / AnomalyDetectorModel.

Kept import-light on purpose: executors import this package to unpickle the
scoring UDF, and they have neither TensorFlow nor pydantic installed. So the
API names are imported on first use (PEP 562), and only the errors eagerly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from adspark.errors import AdsparkError, ArtifactError, ConfigError, PathError, SchemaError, TrainingError

__version__ = "0.1.0"

if TYPE_CHECKING:
    from adspark.api import AnomalyModel, ConfigLike, fit, load
    from adspark.config import JobConfig

__all__ = [
    "AdsparkError",
    "AnomalyModel",
    "ArtifactError",
    "ConfigError",
    "ConfigLike",
    "JobConfig",
    "PathError",
    "SchemaError",
    "TrainingError",
    "__version__",
    "fit",
    "load",
]

_LAZY = {
    "AnomalyModel": "adspark.api",
    "ConfigLike": "adspark.api",
    "fit": "adspark.api",
    "load": "adspark.api",
    "JobConfig": "adspark.config",
}


def __getattr__(name: str) -> Any:
    """Import the API on first use, so `import adspark` pulls in neither pyspark.sql nor pydantic."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'adspark' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
