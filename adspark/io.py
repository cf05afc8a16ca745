"""Paths and the input table.

Paths go through Hadoop's FileSystem API, so hdfs://, s3a:// and local paths
behave alike.
"""

from __future__ import annotations

import logging
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from adspark.config import InputConfig, OutputConfig
from adspark.errors import ConfigError, OutputError, SchemaError

log = logging.getLogger("adspark.io")

GLOB_CHARS = "*?[{"  # Hadoop's glob syntax (org.apache.hadoop.fs.GlobPattern): * ? [abc] {a,b}


def is_glob(path: str) -> bool:
    return any(c in path for c in GLOB_CHARS)


class HadoopPath:
    """A path on whichever filesystem its URI names (local, HDFS, S3...)."""

    def __init__(self, spark: SparkSession, path: str) -> None:
        jvm = spark.sparkContext._jvm
        assert jvm is not None
        jpath = jvm.org.apache.hadoop.fs.Path(path)
        fs = jpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
        self._bind(jvm, fs.makeQualified(jpath), fs)

    def _bind(self, jvm: Any, jpath: Any, fs: Any) -> None:
        self._jvm, self.jpath, self.fs = jvm, jpath, fs
        self.path = str(jpath.toString())

    def _derive(self, jpath: Any) -> HadoopPath:
        other = object.__new__(HadoopPath)
        other._bind(self._jvm, jpath, self.fs)
        return other

    def sibling(self, suffix: str) -> str:
        return str(self._jvm.org.apache.hadoop.fs.Path(self.jpath.getParent(), f".{self.jpath.getName()}{suffix}"))

    def child(self, relative: str) -> HadoopPath:
        return self._derive(self._jvm.org.apache.hadoop.fs.Path(self.jpath, relative))

    def parent(self) -> HadoopPath:
        return self._derive(self.jpath.getParent())

    @property
    def name(self) -> str:
        return str(self.jpath.getName())

    def is_root(self) -> bool:
        return self.jpath.getParent() is None

    def is_dir(self) -> bool:
        return bool(self.exists() and self.fs.getFileStatus(self.jpath).isDirectory())

    def list_names(self) -> list[str]:
        """Names of the entries directly under this directory (empty when it is missing)."""
        if not self.exists():
            return []
        return sorted(str(st.getPath().getName()) for st in self.fs.listStatus(self.jpath))

    def modified_s(self) -> float:
        """Modification time, in seconds since the epoch."""
        return float(self.fs.getFileStatus(self.jpath).getModificationTime()) / 1000.0

    def mkdirs(self) -> None:
        self.fs.mkdirs(self.jpath)

    def leaf_dirs(self, depth: int) -> list[str]:
        """Relative paths of the directories `depth` levels down (partition directories)."""
        pattern = self._jvm.org.apache.hadoop.fs.Path(self.jpath, "/".join(["*"] * depth))
        found = self.fs.globStatus(pattern) or []
        root = len(self.path) + 1
        return sorted(str(st.getPath().toString())[root:] for st in found if st.isDirectory())

    def matches(self, relative: str) -> list[HadoopPath]:
        """The existing paths `relative` names under this path, which may itself be a glob pattern."""
        found = self.fs.globStatus(self._jvm.org.apache.hadoop.fs.Path(self.jpath, relative)) or []
        return [self._derive(st.getPath()) for st in found]

    def exists(self) -> bool:
        return bool(self.fs.exists(self.jpath))

    def delete(self) -> None:
        self.fs.delete(self.jpath, True)

    def rename_to(self, other: HadoopPath) -> None:
        if not self.fs.rename(self.jpath, other.jpath):
            raise OutputError(f"could not rename {self.path} to {other.path}")

    def write_text(self, text: str, overwrite: bool = True) -> None:
        """Write a small file; with `overwrite=False` the create fails (Py4J error) when the file exists."""
        stream = self.fs.create(self.jpath, overwrite)
        try:
            stream.write(bytearray(text.encode()))
        finally:
            stream.close()

    def read_text(self) -> str:
        stream = self.fs.open(self.jpath)
        try:
            reader = self._jvm.java.io.BufferedReader(self._jvm.java.io.InputStreamReader(stream, "UTF-8"))
            lines = []
            line = reader.readLine()
            while line is not None:
                lines.append(str(line))
                line = reader.readLine()
            return "\n".join(lines)
        finally:
            stream.close()


def read_table(spark: SparkSession, cfg: InputConfig) -> DataFrame:
    if not cfg.path:
        raise ConfigError("config: input.path is not set (set it in the YAML file or pass --input)")
    where = HadoopPath(spark, cfg.path)
    if is_glob(cfg.path):
        if not where.fs.globStatus(where.jpath):
            raise SchemaError(f"input path {cfg.path!r} is a pattern that matches no file or directory")
    elif not where.exists():
        raise SchemaError(f"input path {cfg.path!r} does not exist")
    reader = spark.read.format(cfg.format).options(**cfg.spark_options())
    if cfg.format == "csv" and "header" not in cfg.options:
        reader = reader.option("header", "true").option("inferSchema", "true")
    return reader.load(cfg.path)


def layout_columns(df: DataFrame) -> list[str]:
    """The columns that come from the directory layout (Hive-style `dt=20261129/` partition directories) of the
    file tables `df` reads, as Spark's own file index found them; [] when that cannot be told (a DataFrame made
    some other way, Spark Connect)."""
    names: list[str] = []
    try:
        leaves = df._jdf.queryExecution().analyzed().collectLeaves()
        for i in range(leaves.size()):
            leaf = leaves.apply(i)
            if leaf.getClass().getSimpleName() != "LogicalRelation":
                continue
            relation = leaf.relation()
            if relation.getClass().getSimpleName() == "HadoopFsRelation":
                names += [str(n) for n in relation.partitionSchema().fieldNames()]
    except Exception:  # no JVM plan to read: every column is a column
        log.debug("could not read the partition columns of the input's plan", exc_info=True)
        return []
    return [n for n in dict.fromkeys(names) if n in df.columns]


def check_output_target(spark: SparkSession, cfg: OutputConfig) -> None:
    """Fail before any work when the output exists and mode is `error`."""
    if not cfg.path:
        raise ConfigError("config: output.path is not set (set it in the YAML file or pass --output)")
    if cfg.mode == "error" and HadoopPath(spark, cfg.path).exists():
        raise OutputError(f"output path {cfg.path!r} already exists and output.mode is 'error'")
