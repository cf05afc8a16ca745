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
