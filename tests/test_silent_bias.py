"""Silent bias: nulls in a column that never had any, and duplicated rows in the training sample."""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def test_nulls_injected_into_a_never_null_column_are_flagged(small_detector) -> None:
    det, table = small_detector
    assert table.column("a").null_count == 0 and table.column("b").null_count == 0
    scores = det.decision_function(table)
    clean_top = float(np.quantile(scores, 0.99))
    rows = table.slice(100, 50)  # ordinary rows (the planted outliers are the first 20)
    for col in ("a", "b", "count"):
        i = table.schema.get_field_index(col)
        nulled = rows.set_column(i, col, pa.array([None] * rows.num_rows, type=pa.float64()))
        flagged = det.predict(nulled)
        assert flagged.all(), (col, int(flagged.sum()))
        assert det.decision_function(nulled).min() > clean_top, col


def _duplicated(spark, tmp_path, partitions: int) -> str:
    """10 distinct feature rows, each 200 times with its own id."""
    import pandas as pd

    df = pd.DataFrame({"txn_id": np.arange(2000), "x": np.repeat(np.arange(10.0), 200), "y": np.tile(1.0, 2000)})
    path = str(tmp_path / f"dup{partitions}")
    spark.createDataFrame(df).repartition(partitions).write.parquet(path)
    return path


def test_duplicate_rows_are_sampled_independently_of_each_other_and_of_partitioning(spark, tmp_path) -> None:
    from collections import Counter

    from adspark.sampling import training_sample
    from adspark.schema import Roles

    paths = {partitions: _duplicated(spark, tmp_path, partitions) for partitions in (1, 4)}
    for ids in (["txn_id"], []):  # ids in the hash; without ids, every column and the row's file position
        roles = Roles(ids, ["x", "y"], [])
        samples = []
        for partitions in (1, 4):
            df = spark.read.parquet(paths[partitions])
            if not ids:
                df = df.drop("txn_id")
            table = training_sample(df, roles, 500, 7, 2000)
            counts = Counter(table.column("x").to_pylist())
            assert table.num_rows == 500
            assert len(counts) == 10 and all(20 <= c <= 90 for c in counts.values()), (ids, counts)  # not 0 or 200
            samples.append(sorted(table.column("x").to_pylist()))
        if ids:
            assert samples[0] == samples[1]  # the same sample however the table is partitioned
