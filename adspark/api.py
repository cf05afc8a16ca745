"""The library API: train and score a DataFrame the caller already holds.

    import adspark
    model = adspark.fit(df, config)        # config: a dict, a YAML path or a JobConfig
    scored = model.transform(df)           # lazy: a DataFrame; nothing runs until the caller acts
    model.save("models/fraud")             # the artifact directory `adspark train` writes
    model = adspark.load("models/fraud")   # verified as `adspark score` verifies it

`fit` and `transform` go through the same training and scoring functions as the
`adspark` command (adspark.pipeline.fit_artifact and scored_frame), so a model
trained either way scores the same rows bit for bit.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from adspark.artifact import Artifact, load_artifact, save_artifact
from adspark.config import JobConfig, load_config, parse_config
from adspark.errors import ConfigError

log = logging.getLogger("adspark.api")

ConfigLike = JobConfig | Mapping[str, Any] | str | os.PathLike[str] | None
"""A job config: a JobConfig, a dict of the job's YAML keys, the path of a YAML file, or None (all defaults)."""

_SHIPPED: set[str] = set()  # applicationIds of clusters that already have adspark's code


def to_config(config: ConfigLike) -> JobConfig:
    """The job config from any `ConfigLike`; invalid keys or values raise ConfigError."""
    if config is None:
        return JobConfig()
    if isinstance(config, JobConfig):
        return config.model_copy(deep=True)
    if isinstance(config, str | os.PathLike):
        return load_config(Path(config))
    if isinstance(config, Mapping):
        return parse_config(dict(config), "config")
    raise ConfigError(f"config: expected a dict, a YAML file path or a JobConfig, not {type(config).__name__}")


def _dataframe(df: object, what: str) -> DataFrame:
    if not isinstance(df, DataFrame):
        raise TypeError(f"{what} expects a pyspark.sql.DataFrame, not {type(df).__name__}")
    if type(df).__module__.startswith("pyspark.sql.connect"):
        raise TypeError(f"{what} needs a classic SparkSession's DataFrame: the model is broadcast through the "
                        "SparkContext, which Spark Connect does not expose")
    return df


def _spark(df: DataFrame) -> SparkSession:
    """The DataFrame's session; on a cluster, adspark's code is shipped to its executors once."""
    spark = df.sparkSession
    sc = spark.sparkContext
    if not str(sc.master).startswith("local") and sc.applicationId not in _SHIPPED:
        from adspark.session import ship_package

        ship_package(spark)
        _SHIPPED.add(sc.applicationId)
    return spark


class AnomalyModel:
    """A trained detector: its verified artifact plus the config that shapes its output.

    Attributes:
        artifact: the manifest and ONNX files, as `adspark train` writes them.
        config: the job config; its `columns.id` and `output` keys decide the
            output columns of `transform`, as they do for `adspark score`.
    """

    def __init__(self, artifact: Artifact, config: ConfigLike = None) -> None:
        self.artifact = artifact
        self.config = to_config(config)

    @property
    def kind(self) -> str:
        """The detector family: autoencoder, gan, lstm."""
        return self.artifact.kind

    @property
    def threshold(self) -> float:
        """The score above which `transform` flags a row: the config's `threshold` block fitted on the model's
        frozen training scores when the config has one, else the model's own; NaN for `top_k` (a number of
        rows, cut anew on each table)."""
        from adspark.pipeline import decision_for

        value = decision_for(self.config, self.artifact).threshold
        return float("nan") if value is None else float(value)

    @property
    def input_columns(self) -> list[str]:
        """The columns the model reads: its features, then (sequence models) the entity and timestamp columns."""
        return [c["name"] for c in self.artifact.input_schema]

    @property
    def path(self) -> str | None:
        """The directory the model was saved to or loaded from; None before `save`."""
        return self.artifact.path or None

    @property
    def digest(self) -> str:
        """sha256 of the model's manifest.json, which pins every file of the artifact."""
        return self.artifact.digest

    @property
    def manifest(self) -> dict[str, Any]:
        """The artifact's manifest (preprocessing, network, threshold, training summary, versions)."""
        return dict(self.artifact.manifest)

    def transform(self, df: DataFrame) -> DataFrame:
        """`df`'s columns (or the config's `output.columns`) plus the score columns; lazy, writes nothing.

        The schema is checked at once: a missing or mistyped model column raises
        SchemaError here, not later in a Spark task. With `preprocess.on_missing:
        fail` the model's numeric columns are also checked for missing values,
        which runs one aggregation over `df` before this returns.
        """
        from adspark.pipeline import check_scorable, scored_frame
        from adspark.session import check_local_workers

        df = _dataframe(df, "transform")
        check_scorable(self.config, df, self.artifact)
        check_local_workers(_spark(df))
        return scored_frame(_spark(df), self.config, df, self.artifact)

    def save(self, path: str | os.PathLike[str]) -> AnomalyModel:
        """Write the artifact directory (manifest.json + ONNX files) at `path`, swapped in whole; returns self.

        The same path rules as `adspark train`'s model_dir (adspark.guard): a
        filesystem root, an existing file or a non-empty directory that is not
        an adspark model is refused with PathError, and one writer at a time
        holds the path. A local path, like the job's model_dir.
        """
        from adspark.guard import guarded
        from adspark.publish import new_run_id

        spark = SparkSession.getActiveSession() or SparkSession.builder.getOrCreate()
        with guarded(spark, {"model_dir": str(path)}, ["model_dir"], new_run_id()):
            self.artifact = save_artifact(Path(path), self.artifact.manifest, self.artifact.files)
        log.info("saved model to %s", self.artifact.path)
        return self

    def __repr__(self) -> str:
        where = self.path or "unsaved"
        return f"AnomalyModel(kind={self.kind!r}, threshold={self.threshold:.6g}, {where})"


def fit(df: DataFrame, config: ConfigLike = None) -> AnomalyModel:
    """Train a detector on `df` as `adspark train` does; nothing is written (see `AnomalyModel.save`).

    The sample is the job's: seeded by `train.seed`, at most `train.sample_rows`
    rows, chosen by a hash of each row in Spark and never the whole table
    collected. Paths in the config (input.path, output.path, model_dir) are not
    needed and are ignored; so are its `spark` settings (the DataFrame's session
    is used as it is).
    """
    from adspark.io import layout_columns
    from adspark.pipeline import fit_artifact
    from adspark.schema import resolve_roles

    cfg = to_config(config)
    df = _dataframe(df, "fit")
    resolve_roles(cfg, df.schema, layout_columns(df))  # a bad schema fails before any Spark job
    _spark(df)
    artifact = fit_artifact(cfg, df, df.count())
    log.info("trained %s model (threshold %.6g)", artifact.kind, artifact.threshold)
    return AnomalyModel(artifact, cfg)


def load(path: str | os.PathLike[str], config: ConfigLike = None) -> AnomalyModel:
    """A saved model, verified as `adspark score` verifies it (format, kind, file list, every sha256).

    `config` is only needed to shape the output as the job's config does
    (`columns.id`, `output.columns`, ...); by default every input column is kept.
    A tampered or incomplete directory raises ArtifactError.
    """
    cfg = to_config(config)
    return AnomalyModel(load_artifact(Path(path)), cfg)
