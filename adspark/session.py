"""SparkSession set-up: local[*] by default, the submitter's master under spark-submit."""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

from pyspark.sql import SparkSession

from adspark.config import JobConfig

log = logging.getLogger("adspark.session")

LOCAL_DEFAULTS = {
    "spark.driver.memory": "4g",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}


def under_spark_submit() -> bool:
    """spark-submit starts Python with a ready Py4J gateway and says so in the environment."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def get_spark(cfg: JobConfig, app_name: str = "adspark") -> SparkSession:
    builder = SparkSession.builder.appName(app_name)
    settings = {k: str(v) for k, v in cfg.spark.items()}
    verbose_level = os.environ.get("ADSPARK_SPARK_LOG_LEVEL")
    if not under_spark_submit():
        # Local run: workers must use this very interpreter (same packages). Under
        # spark-submit the cluster's own Python settings are left alone.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        settings = {**LOCAL_DEFAULTS, "spark.master": "local[*]", **settings}
        if verbose_level is None:  # -v sets it: then Spark's own configuration
            settings = with_quiet_log_config(settings)
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN" if verbose_level is None else verbose_level)
    if verbose_level is None:
        quiet_known_warnings(spark)
    if not str(spark.sparkContext.master).startswith("local"):
        ship_package(spark)
    return spark


# What a Python worker imports to score (adspark/runtime); a local session's workers need it installed.
WORKER_MODULES = ("adspark", "numpy", "pandas", "pyarrow", "onnxruntime")
_checked_workers: dict[str, str | None] = {}


def check_local_workers(spark: SparkSession) -> None:
    """In a local session, the interpreter Spark starts Python workers with must import adspark's runtime.

    PySpark takes it from PYSPARK_PYTHON (`python3` on the PATH when unset); the session's own
    `spark.pyspark.python` does not reach a session started from Python. A mismatch would otherwise
    surface as `No module named 'adspark'` inside the first task. Clusters are left alone: their
    executors get adspark's code shipped, and their Python is theirs to set.
    """
    import subprocess

    from adspark.errors import ConfigError

    context = spark.sparkContext
    if not str(context.master).startswith("local"):
        return
    name = str(context.pythonExec)
    exe = shutil.which(name) or name
    if os.path.abspath(exe) == os.path.abspath(sys.executable):
        return
    if exe not in _checked_workers:
        probe = f"import {', '.join(WORKER_MODULES)}"
        try:
            done = subprocess.run([exe, "-c", probe], capture_output=True, text=True, timeout=120)
            last = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
            _checked_workers[exe] = None if done.returncode == 0 else last
        except OSError as err:
            _checked_workers[exe] = str(err)
    problem = _checked_workers[exe]
    if problem is not None:
        raise ConfigError(f"Spark's Python workers run {name!r} ({exe}), which cannot import adspark's runtime "
                          f"({problem}): set PYSPARK_PYTHON to an interpreter that has adspark installed, e.g. "
                          f"{sys.executable}, before the SparkSession starts")


def with_quiet_log_config(settings: dict[str, str]) -> dict[str, str]:
    """Point the driver JVM adspark launches at the packaged log4j2 file, unless the config names its own."""
    key = "spark.driver.extraJavaOptions"
    options = settings.get(key, "")
    if "log4j2.configurationFile" in options or "log4j.configurationFile" in options:
        return settings
    log_file = Path(__file__).resolve().parent / "log4j2.properties"
    if not log_file.is_file():
        return settings
    return {**settings, key: f"{options} -Dlog4j2.configurationFile={log_file.as_uri()}".strip()}


# Spark loggers whose warnings are about how adspark reads, not about the user's data (`-v` shows them):
QUIET_LOGGERS = (
    # "All paths were ignored" on every read of a dot-directory: adspark stages its output in
    # `.NAME.adspark-staging-*` beside the target and reads it back to verify it.
    "org.apache.spark.sql.execution.datasources.DataSource",
    # "Assume no metadata directory", with a FileNotFoundException's stack, for every glob input.path: Spark
    # looks for a streaming sink's log under the pattern taken literally, then reads the pattern as usual.
    "org.apache.spark.sql.execution.streaming.sinks.FileStreamSink",
    # "No Partition Defined for Window operation": evaluate orders each segment's distinct scores in one task
    # on purpose (an external sort, bounded memory; README, "Evaluation").
    "org.apache.spark.sql.execution.window.WindowExec",
    # "Truncated the string representation of a plan": Spark shortens a wide table's plan in its own logs and UI.
    "org.apache.spark.util.SparkStringUtils",
)


def quiet_known_warnings(spark: SparkSession) -> None:
    """Raise QUIET_LOGGERS to ERROR in the driver JVM."""
    jvm = spark.sparkContext._jvm
    try:
        level = jvm.org.apache.logging.log4j.Level.ERROR  # type: ignore[union-attr]
        for name in QUIET_LOGGERS:
            jvm.org.apache.logging.log4j.core.config.Configurator.setLevel(name, level)  # type: ignore[union-attr]
    except Exception:  # another logging backend: keep Spark's default
        log.debug("could not lower the levels of %s", QUIET_LOGGERS, exc_info=True)


def ship_package(spark: SparkSession) -> None:
    """Send adspark's own code to the executors, which need not have it installed."""
    pkg = Path(__file__).resolve().parent
    tmp = tempfile.mkdtemp(prefix="adspark-pyfiles-")
    # Spark serves the file from this path to executors while the application runs: remove it at exit.
    atexit.register(shutil.rmtree, tmp, True)
    target = Path(tmp) / "adspark.zip"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(pkg.rglob("*.py")):
            zf.write(path, path.relative_to(pkg.parent).as_posix())
    spark.sparkContext.addPyFile(str(target))
    log.info("shipped adspark code to executors as %s", target)
