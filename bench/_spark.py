"""Shared Spark session set-up for the bench helper jobs.

Every helper builds its session exactly like `adspark.session.get_spark` does for
a local run (LOCAL_DEFAULTS, then the master, then per-run `--conf` overrides),
so copy, identity, textbook and `adspark score` differ only in what they compute.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from pyspark.sql import SparkSession

from adspark.session import LOCAL_DEFAULTS

DEFAULT_MASTER = "local[2]"


def parse_conf(pairs: Sequence[str]) -> dict[str, str]:
    """`["k=v", ...]` from repeated `--conf k=v` flags."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--conf expects key=value, got {pair!r}")
        out[key.strip()] = value.strip()
    return out


def session_settings(master: str = DEFAULT_MASTER, extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**LOCAL_DEFAULTS, "spark.master": master, **(extra or {})}


def build_session(app_name: str, master: str = DEFAULT_MASTER, extra: dict[str, str] | None = None) -> SparkSession:
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name)
    for key, value in session_settings(master, extra).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(os.environ.get("ADSPARK_SPARK_LOG_LEVEL", "WARN"))
    return spark
