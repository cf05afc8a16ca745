"""Spark side of scoring: one Arrow UDF over the feature columns only.

The artifact travels to executors as broadcast bytes. Only the model's feature
columns (cast on the JVM side) cross into Python, packed in one struct column;
all other columns stay in the JVM and are rejoined to the scores by Spark.
"""

from __future__ import annotations

import json
import warnings

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.functions import ArrowUDFType

from adspark.artifact import Artifact
from adspark.runtime import batch_scorer
from adspark.schema import FLAG_COL, SCORE_COL, feature_columns


def _feature_names(artifact: Artifact, role: str) -> list[str]:
    return [c["name"] for c in artifact.input_schema if c["role"] == role]


def score_dataframe(spark: SparkSession, df: DataFrame, artifact: Artifact) -> DataFrame:
    """`df` with `anomaly_score` (double) and `is_anomaly` (boolean) appended; no row added or lost."""
    payload = spark.sparkContext.broadcast((json.dumps(artifact.manifest), artifact.files))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # prefers type hints; the closure has none at runtime
        udf = F.arrow_udf(batch_scorer(artifact.digest, payload), "double", ArrowUDFType.SCALAR_ITER)
    features = feature_columns(_feature_names(artifact, "numeric"), _feature_names(artifact, "categorical"))
    scored = df.withColumn(SCORE_COL, udf(F.struct(*features)))
    return scored.withColumn(FLAG_COL, F.col(SCORE_COL) > F.lit(artifact.threshold))
