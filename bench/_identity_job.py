"""Profiling job: the same JVM<->Python Arrow round trip as `adspark score`, with no model.

    python bench/_identity_job.py --input IN --output OUT [--features f0,f1,...] [--ids txn_id]
                                  [--shape struct|columns] [--columns all|ids] [--conf k=v ...]

An Arrow UDF (SCALAR_ITER, as in adspark/scoring.py) receives the feature columns
(numeric ones cast to double, others as they are), packed in one struct (or as separate arguments with --shape columns),
and returns its first field as the "score". The output is written like adspark's:
every input column (or only the ids) plus the score. Time(score) - time(identity)
is what adspark's Python code and its extra passes cost on top of the transfer.
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Iterator

import pyarrow as pa
from _spark import DEFAULT_MASTER, build_session, parse_conf
from pyspark.sql import functions as F
from pyspark.sql.pandas.functions import ArrowUDFType
from pyspark.sql.types import NumericType


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--features", default="", help="comma-separated; default: every column but the ids")
    p.add_argument("--ids", default="txn_id")
    p.add_argument("--shape", choices=("struct", "columns"), default="struct")
    p.add_argument("--columns", choices=("all", "ids"), default="all")
    p.add_argument("--master", default=DEFAULT_MASTER)
    p.add_argument("--conf", action="append", default=[], help="extra Spark setting key=value (repeatable)")
    return p.parse_args()


def identity_struct(batches: Iterator[pa.StructArray]) -> Iterator[pa.Array]:
    for batch in batches:
        yield batch.field(0)


def identity_columns(batches: Iterator[tuple[pa.Array, ...]]) -> Iterator[pa.Array]:
    for cols in batches:
        yield cols[0]


def main() -> None:
    args = _args()
    started = time.perf_counter()
    spark = build_session("bench-identity", args.master, parse_conf(args.conf))
    df = spark.read.parquet(args.input)
    ids = [c for c in args.ids.split(",") if c]
    features = [c for c in args.features.split(",") if c] or [c for c in df.columns if c not in ids]
    numeric = {f.name for f in df.schema.fields if isinstance(f.dataType, NumericType)}
    cast = [F.col(f"`{c}`").cast("double").alias(c) if c in numeric else F.col(f"`{c}`") for c in features]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        if args.shape == "struct":
            udf = F.arrow_udf(identity_struct, "double", ArrowUDFType.SCALAR_ITER)
            score = udf(F.struct(*cast))
        else:
            udf = F.arrow_udf(identity_columns, "double", ArrowUDFType.SCALAR_ITER)
            score = udf(*cast)
    keep = df.columns if args.columns == "all" else ids
    out = df.withColumn("anomaly_score", score).select(*[f"`{c}`" for c in keep], "anomaly_score")
    out.write.mode("overwrite").parquet(args.output)
    print(f"identity[{args.shape},{args.columns}]: total {time.perf_counter() - started:.1f} s")
    spark.stop()


if __name__ == "__main__":
    main()
