"""A reproducible training sample, collected to the driver as Arrow.

Rows are chosen by a seeded hash, not by Spark's partition layout, so the same
table gives the same sample however it is partitioned or ordered. The hash
covers the features and what tells duplicate rows apart, so rows with equal
features are sampled independently instead of all in or all out: the id
columns when configured, otherwise every column of the row plus, for file
sources that have it (Parquet), the row's file and position in that file.
"""

from __future__ import annotations

import logging

import pyarrow as pa
from pyspark.errors import AnalysisException
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from adspark.schema import Roles, column, feature_columns

log = logging.getLogger("adspark.sample")
_KEY = "__adspark_sample_key"
_HASH_RANGE = float(2**62)


def training_sample(df: DataFrame, roles: Roles, max_rows: int, seed: int, total_rows: int) -> pa.Table:
    features = df.select(*feature_columns(roles.numeric, roles.categorical))
    if total_rows <= max_rows:
        return features.toArrow()
    key = F.xxhash64(*_row_identity(df, roles), F.lit(seed)) % F.lit(2**62)
    keyed = df.select(*feature_columns(roles.numeric, roles.categorical), F.abs(key).alias(_KEY))
    # Pre-filter to ~1.2x the sample by hash range, then take exactly max_rows by
    # hash order: cheap at any table size, and independent of partitioning.
    bound = min(1.0, 1.2 * max_rows / total_rows) * _HASH_RANGE
    chosen = keyed.where(F.col(_KEY) < F.lit(int(bound))).orderBy(_KEY).limit(max_rows).drop(_KEY)
    table = chosen.toArrow()
    log.info("training sample: %d of %d rows", table.num_rows, total_rows)
    return table


def _row_identity(df: DataFrame, roles: Roles) -> list[Column]:
    """The features, then what sets a row apart from its duplicates (ids, else all columns and file position)."""
    cols = [column(c) for c in roles.features]
    if roles.ids:
        return cols + [column(c) for c in roles.ids]
    cols += [column(c) for c in df.columns if c not in roles.features]
    try:
        position = [F.col("_metadata.file_path"), F.col("_metadata.row_index")]
        df.select(*position).schema  # noqa: B018  (resolves now: is the position available for this source?)
    except AnalysisException:
        log.info("training sample: no row position for this source; exact duplicate rows are sampled together")
        return cols
    return cols + position


def empty_feature_warnings(sample: pa.Table, numeric: list[str], categorical: list[str]) -> list[str]:
    """Feature columns with no value in the training sample: a source column broken upstream shows here."""
    import numpy as np

    from adspark.features import as_float

    rows, lines = sample.num_rows, []
    for name in numeric:
        if rows and not np.isfinite(as_float(sample.column(name))).any():
            lines.append(f"numeric column `{name}` has no finite value in the {rows} sampled rows (all null, NaN "
                         "or ±inf): it adds nothing to the model; check the source table, or exclude it")
    for name in categorical:
        if rows and sample.column(name).null_count == rows:
            lines.append(f"categorical column `{name}` is null in all {rows} sampled rows: it adds nothing to the "
                         "model; check the source table, or exclude it")
    return lines
