"""Baseline jobs for the speed benchmarks: a plain Parquet copy, an ordered copy, or a session that does nothing.

    python bench/_copy_job.py copy --input IN --output OUT [--master local[2]] [--conf k=v ...]
    python bench/_copy_job.py order --input IN --output OUT --key host --sort ts [--master local[2]]
    python bench/_copy_job.py noop [--master local[2]]

`copy` is the floor any Spark batch job over this table pays: read, convert to rows, write Parquet.
`order` adds what any job that reads each stream in order pays on a table stored unordered: a shuffle of
every column by `--key` and a sort by `--key`, `--sort` within each partition.
`noop` measures process start-up alone: interpreter, JVM, SparkSession, shutdown.
"""

from __future__ import annotations

import argparse
import time

from _spark import DEFAULT_MASTER, build_session, parse_conf


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=("copy", "order", "noop"))
    p.add_argument("--input")
    p.add_argument("--output")
    p.add_argument("--key", help="order: the stream column")
    p.add_argument("--sort", help="order: the column that orders a stream")
    p.add_argument("--master", default=DEFAULT_MASTER)
    p.add_argument("--conf", action="append", default=[], help="extra Spark setting key=value (repeatable)")
    return p.parse_args()


def main() -> None:
    args = _args()
    if args.mode != "noop" and not (args.input and args.output):
        raise SystemExit(f"{args.mode} needs --input and --output")
    if args.mode == "order" and not (args.key and args.sort):
        raise SystemExit("order needs --key and --sort")
    started = time.perf_counter()
    spark = build_session(f"bench-{args.mode}", args.master, parse_conf(args.conf))
    session_s = time.perf_counter() - started
    if args.mode in ("copy", "order"):
        df = spark.read.parquet(args.input)
        if args.mode == "order":
            df = df.repartition(args.key).sortWithinPartitions(args.key, args.sort)
        df.write.mode("overwrite").parquet(args.output)
    print(f"{args.mode}: session {session_s:.1f} s, total {time.perf_counter() - started:.1f} s")
    spark.stop()


if __name__ == "__main__":
    main()
