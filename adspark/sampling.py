"""A reproducible training sample, collected to the driver as Arrow.

Rows are chosen by a seeded hash of their feature values, not by position, so
the same table gives the same sample however it is partitioned or ordered.
"""

from __future__ import annotations

import logging

import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from adspark.schema import Roles, column, feature_columns

log = logging.getLogger("adspark.sample")
_KEY = "__adspark_sample_key"
_HASH_RANGE = float(2**62)


def training_sample(df: DataFrame, roles: Roles, max_rows: int, seed: int, total_rows: int) -> pa.Table:
    features = df.select(*feature_columns(roles.numeric, roles.categorical))
    if total_rows <= max_rows:
        return features.toArrow()
    key = F.xxhash64(*[column(c) for c in roles.features], F.lit(seed)) % F.lit(2**62)
    keyed = features.withColumn(_KEY, F.abs(key))
    # Pre-filter to ~1.2x the sample by hash range, then take exactly max_rows by
    # hash order: cheap at any table size, and independent of partitioning.
    bound = min(1.0, 1.2 * max_rows / total_rows) * _HASH_RANGE
    chosen = keyed.where(F.col(_KEY) < F.lit(int(bound))).orderBy(_KEY).limit(max_rows).drop(_KEY)
    table = chosen.toArrow()
    log.info("training sample: %d of %d rows", table.num_rows, total_rows)
    return table
