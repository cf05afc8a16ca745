"""Baseline job for bench/score_vs_copy.py: a plain Parquet copy, or a session that does nothing.

    python bench/_copy_job.py copy --input IN --output OUT [--master local[2]] [--conf k=v ...]
    python bench/_copy_job.py noop [--master local[2]]

`copy` is the floor any Spark batch job over this table pays: read, convert to rows, write Parquet.
`noop` measures process start-up alone: interpreter, JVM, SparkSession, shutdown.
"""

from __future__ import annotations

import argparse
import time

from _spark import DEFAULT_MASTER, build_session, parse_conf


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=("copy", "noop"))
    p.add_argument("--input")
    p.add_argument("--output")
    p.add_argument("--master", default=DEFAULT_MASTER)
    p.add_argument("--conf", action="append", default=[], help="extra Spark setting key=value (repeatable)")
    return p.parse_args()


def main() -> None:
    args = _args()
    started = time.perf_counter()
    spark = build_session(f"bench-{args.mode}", args.master, parse_conf(args.conf))
    session_s = time.perf_counter() - started
    if args.mode == "copy":
        if not (args.input and args.output):
            raise SystemExit("copy needs --input and --output")
        spark.read.parquet(args.input).write.mode("overwrite").parquet(args.output)
    print(f"{args.mode}: session {session_s:.1f} s, total {time.perf_counter() - started:.1f} s")
    spark.stop()


if __name__ == "__main__":
    main()
