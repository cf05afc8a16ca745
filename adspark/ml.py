"""adspark as Spark ML stages: `AnomalyDetector` (Estimator) and `AnomalyDetectorModel` (Transformer).

    from pyspark.ml import Pipeline, PipelineModel
    from adspark.ml import AnomalyDetector

    detector = AnomalyDetector(idCols=["txn_id"], categoricalCols=["merchant"], excludeCols=["label"],
                               thresholdValue=0.01, seed=7)
    fitted = Pipeline(stages=[detector]).fit(train_df)
    fitted.write().overwrite().save("models/fraud-pipeline")
    scored = PipelineModel.load("models/fraud-pipeline").transform(df)

The params mirror the job config's keys (the table below `_MIRRORED`); any
other key goes in `config` (a dict or its JSON), which the named params
override. Fitting and scoring are `adspark.fit` and `AnomalyModel.transform`:
the same sample, training and scoring as the `adspark` command.

Overwriting: `write().overwrite().save(p)` on either stage replaces `p` only
when it is empty or a saved Spark ML stage (its `metadata` reads back as one);
any other file or directory is refused with PathError before anything is
deleted (adspark.guard's rule for model directories). A Pipeline's writer is
Spark's own: its `overwrite()` deletes `p` before any stage is asked, so give a
pipeline a path of its own.

Persistence: the params are written by Spark's DefaultParamsWriter
(`<stage>/metadata`) and the model as its artifact directory, manifest.json +
ONNX files, under `<stage>/artifact`: no pickle. Loading verifies that
directory as `adspark score` does; on a local filesystem it is itself a model
directory `adspark score --model-dir` accepts.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pyspark import keyword_only
from pyspark.ml import Estimator, Model
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.util import (
    DefaultParamsReadable,
    DefaultParamsReader,
    DefaultParamsWritable,
    DefaultParamsWriter,
    MLReadable,
    MLReader,
    MLWritable,
    MLWriter,
)
from pyspark.sql import DataFrame, SparkSession

from adspark.api import AnomalyModel, fit
from adspark.artifact import MANIFEST, Artifact, load_artifact, manifest_bytes, save_artifact
from adspark.config import JobConfig, parse_config
from adspark.errors import ArtifactError, ConfigError, NotFittedError, PathError
from adspark.guard import ML_METADATA, check_replaceable, qualified
from adspark.schema import FLAG_COL, SCORE_COL

ARTIFACT_DIR = "artifact"

# param name -> the job config key it sets
_MIRRORED: dict[str, tuple[str, str]] = {
    "kind": ("model", "kind"),
    "hidden": ("model", "hidden"),
    "featuresCols": ("columns", "numeric"),
    "categoricalCols": ("columns", "categorical"),
    "idCols": ("columns", "id"),
    "excludeCols": ("columns", "exclude"),
    "entityCols": ("columns", "entity"),
    "timestampCol": ("columns", "timestamp"),
    "thresholdMethod": ("threshold", "method"),
    "thresholdValue": ("threshold", "value"),
    "seed": ("train", "seed"),
    "sampleRows": ("train", "sample_rows"),
    "epochs": ("train", "epochs"),
    "onMissing": ("preprocess", "on_missing"),
    "outputCol": ("output", "score_column"),
    "flagCol": ("output", "flag_column"),
}


def _to_config_json(value: Any) -> str:
    """A config given as a dict or as JSON text, kept as canonical JSON (it is saved with the params)."""
    if isinstance(value, str):
        try:
            value = json.loads(value or "{}")
        except ValueError as err:
            raise TypeError(f"config: not valid JSON ({err})") from None
    if not isinstance(value, Mapping):
        raise TypeError(f"config: expected a dict or its JSON text, not {type(value).__name__}")
    return json.dumps(dict(value), sort_keys=True)


class _AnomalyParams(Params):
    """Params shared by the estimator and its model (a fitted model keeps the estimator's)."""

    kind = Param(Params._dummy(), "kind", "detector family: autoencoder, gan or lstm (model.kind)",
                 TypeConverters.toString)
    hidden = Param(Params._dummy(), "hidden", "hidden layer sizes (model.hidden)", TypeConverters.toListInt)
    featuresCols = Param(Params._dummy(), "featuresCols", "numeric feature columns; default: every numeric "
                         "column not otherwise named (columns.numeric)", TypeConverters.toListString)
    categoricalCols = Param(Params._dummy(), "categoricalCols", "categorical feature columns (columns.categorical)",
                            TypeConverters.toListString)
    idCols = Param(Params._dummy(), "idCols", "id columns, never features (columns.id)", TypeConverters.toListString)
    excludeCols = Param(Params._dummy(), "excludeCols", "columns that are not features (columns.exclude)",
                        TypeConverters.toListString)
    entityCols = Param(Params._dummy(), "entityCols", "stream key columns of sequence models (columns.entity)",
                       TypeConverters.toListString)
    timestampCol = Param(Params._dummy(), "timestampCol", "ordering column of sequence models (columns.timestamp)",
                         TypeConverters.toString)
    thresholdMethod = Param(Params._dummy(), "thresholdMethod", "how the threshold is set (threshold.method)",
                            TypeConverters.toString)
    thresholdValue = Param(Params._dummy(), "thresholdValue", "the threshold method's value (threshold.value)",
                           TypeConverters.toFloat)
    seed = Param(Params._dummy(), "seed", "seed of the sample and the training (train.seed)", TypeConverters.toInt)
    sampleRows = Param(Params._dummy(), "sampleRows", "cap on the training sample (train.sample_rows)",
                       TypeConverters.toInt)
    epochs = Param(Params._dummy(), "epochs", "training epochs (train.epochs)", TypeConverters.toInt)
    onMissing = Param(Params._dummy(), "onMissing", "impute or fail on missing numeric values "
                      "(preprocess.on_missing)", TypeConverters.toString)
    config = Param(Params._dummy(), "config", "any other job config keys, as a dict or its JSON; the params "
                   "above override it", _to_config_json)
    outputCol = Param(Params._dummy(), "outputCol", "name of the score column (output.score_column)",
                      TypeConverters.toString)
    flagCol = Param(Params._dummy(), "flagCol", "name of the flag column (output.flag_column)",
                    TypeConverters.toString)

    _input_kwargs: dict[str, Any]  # set by @keyword_only

    def __init__(self) -> None:
        super().__init__()
        self._setDefault(config="{}", outputCol=SCORE_COL, flagCol=FLAG_COL)

    def jobConfig(self) -> JobConfig:
        """The job config these params stand for; invalid values raise ConfigError naming the key."""
        data: dict[str, Any] = json.loads(self.getOrDefault(self.config))
        for name, (section, key) in _MIRRORED.items():
            param = self.getParam(name)
            if self.isSet(param):
                part = data.setdefault(section, {})
                if not isinstance(part, dict):
                    raise ConfigError(f"{type(self).__name__} config: {section!r} must be a mapping")
                part[key] = self.getOrDefault(param)
        return parse_config(data, f"{type(self).__name__} params")

    def getOutputCol(self) -> str:
        return str(self.getOrDefault(self.outputCol))

    def getFlagCol(self) -> str:
        return str(self.getOrDefault(self.flagCol))


class AnomalyDetector(Estimator["AnomalyDetectorModel"], _AnomalyParams, DefaultParamsReadable["AnomalyDetector"],
                      DefaultParamsWritable):
    """Trains an adspark detector on a DataFrame: `adspark.fit` with the config from these params."""

    @keyword_only
    def __init__(
        self,
        *,
        kind: str | None = None,
        hidden: list[int] | None = None,
        featuresCols: list[str] | None = None,
        categoricalCols: list[str] | None = None,
        idCols: list[str] | None = None,
        excludeCols: list[str] | None = None,
        entityCols: list[str] | None = None,
        timestampCol: str | None = None,
        thresholdMethod: str | None = None,
        thresholdValue: float | None = None,
        seed: int | None = None,
        sampleRows: int | None = None,
        epochs: int | None = None,
        onMissing: str | None = None,
        config: Mapping[str, Any] | str | None = None,
        outputCol: str = SCORE_COL,
        flagCol: str = FLAG_COL,
    ) -> None:
        super().__init__()
        kwargs = self._input_kwargs
        self.setParams(**kwargs)

    @keyword_only
    def setParams(
        self,
        *,
        kind: str | None = None,
        hidden: list[int] | None = None,
        featuresCols: list[str] | None = None,
        categoricalCols: list[str] | None = None,
        idCols: list[str] | None = None,
        excludeCols: list[str] | None = None,
        entityCols: list[str] | None = None,
        timestampCol: str | None = None,
        thresholdMethod: str | None = None,
        thresholdValue: float | None = None,
        seed: int | None = None,
        sampleRows: int | None = None,
        epochs: int | None = None,
        onMissing: str | None = None,
        config: Mapping[str, Any] | str | None = None,
        outputCol: str = SCORE_COL,
        flagCol: str = FLAG_COL,
    ) -> AnomalyDetector:
        """Set the given params; the config they make is checked at once (ConfigError)."""
        kwargs = {k: v for k, v in self._input_kwargs.items() if v is not None}
        self._set(**kwargs)
        self.jobConfig()
        return self

    def write(self) -> MLWriter:
        return _ParamsWriter(self)

    def _fit(self, dataset: DataFrame) -> AnomalyDetectorModel:
        model = AnomalyDetectorModel()
        model._model = fit(dataset, self.jobConfig())
        return self._copyValues(model)


class AnomalyDetectorModel(Model, _AnomalyParams, MLReadable["AnomalyDetectorModel"], MLWritable):
    """A fitted adspark detector as a Transformer: appends the score and flag columns, lazily."""

    def __init__(self) -> None:
        super().__init__()
        self._model: AnomalyModel | None = None

    @classmethod
    def fromModel(cls, model: AnomalyModel, **params: Any) -> AnomalyDetectorModel:
        """Wrap a model from `adspark.fit` or `adspark.load` as a pipeline stage."""
        stage = cls()
        stage._set(**params)
        stage._model = model
        return stage

    @property
    def model(self) -> AnomalyModel:
        """The fitted model (artifact + config), as `adspark.fit` / `adspark.load` return it."""
        if self._model is None:
            raise NotFittedError("AnomalyDetectorModel has no model: fit an AnomalyDetector or load a saved stage")
        return self._model

    def _transform(self, dataset: DataFrame) -> DataFrame:
        return AnomalyModel(self.model.artifact, self.jobConfig()).transform(dataset)

    def write(self) -> MLWriter:
        return _ModelWriter(self)

    @classmethod
    def read(cls) -> MLReader[AnomalyDetectorModel]:
        return _ModelReader(cls)


def check_overwritable(spark: SparkSession, path: str) -> None:
    """`overwrite()` may delete `path` only when it is missing, empty or a saved Spark ML stage; else PathError."""
    target = qualified(spark, path)
    if target.is_root():
        raise PathError(f"stage path {target.path} is a filesystem root; refusing to overwrite it")
    if not check_replaceable("stage path", target):
        return  # missing or empty
    try:
        metadata = DefaultParamsReader.loadMetadata(path, spark)
    except Exception:  # unreadable, not JSON, not text: in every case not a stage's metadata
        metadata = None
    if not isinstance(metadata, dict) or not {"class", "uid", "sparkVersion"} <= metadata.keys():
        raise PathError(f"stage path {target.path} holds a {ML_METADATA} directory that is not a Spark ML stage's "
                        "(no class, uid and sparkVersion in its first line); refusing to overwrite it (move it "
                        "away or choose another path)")


class _GuardedOverwrite(MLWriter):
    """Spark's overwrite deletes the path outright; this one checks it first (`check_overwritable`)."""

    def _handleOverwrite(self, path: str) -> None:
        check_overwritable(self.sparkSession, path)
        super()._handleOverwrite(path)


class _ParamsWriter(_GuardedOverwrite, DefaultParamsWriter):
    """The estimator's params to `<path>/metadata`, as Spark's DefaultParamsWriter writes them."""


class _ModelWriter(_GuardedOverwrite):
    """Params to `<path>/metadata`, the artifact to `<path>/artifact`."""

    def __init__(self, instance: AnomalyDetectorModel) -> None:
        super().__init__()
        self.instance = instance

    def saveImpl(self, path: str) -> None:
        artifact = self.instance.model.artifact
        DefaultParamsWriter.saveMetadata(self.instance, path, self.sparkSession)
        write_artifact(self.sparkSession, artifact, f"{path.rstrip('/')}/{ARTIFACT_DIR}")


class _ModelReader(MLReader[AnomalyDetectorModel]):
    def __init__(self, cls: type[AnomalyDetectorModel]) -> None:
        super().__init__()
        self.cls = cls

    def load(self, path: str) -> AnomalyDetectorModel:
        metadata = DefaultParamsReader.loadMetadata(path, self.sparkSession)
        stage = self.cls()
        stage._resetUid(metadata["uid"])
        DefaultParamsReader.getAndSetParams(stage, metadata)
        artifact = read_artifact(self.sparkSession, f"{path.rstrip('/')}/{ARTIFACT_DIR}")
        stage._model = AnomalyModel(artifact, stage.jobConfig())
        return stage


def _filesystem(spark: SparkSession, path: str) -> tuple[Any, Any, Any]:
    """(jvm, qualified Hadoop path, its FileSystem)."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    jpath = jvm.org.apache.hadoop.fs.Path(path)
    fs = jpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    return jvm, fs.makeQualified(jpath), fs


def local_path(spark: SparkSession, path: str) -> Path | None:
    """The local directory `path` names, or None when it is on another filesystem (HDFS, S3...)."""
    _, jpath, fs = _filesystem(spark, path)
    if str(fs.getScheme()) != "file":
        return None
    return Path(str(jpath.toUri().getPath()))


def write_artifact(spark: SparkSession, artifact: Artifact, path: str) -> None:
    """The artifact directory at `path`: byte for byte the files `model.save` writes."""
    local = local_path(spark, path)
    if local is not None:
        save_artifact(local, artifact.manifest, artifact.files)
        return
    jvm, root, fs = _filesystem(spark, path)
    for name, data in [*artifact.files.items(), (MANIFEST, manifest_bytes(artifact.manifest))]:
        stream = fs.create(jvm.org.apache.hadoop.fs.Path(root, name), True)
        try:
            stream.write(bytearray(data))
        finally:
            stream.close()


def read_artifact(spark: SparkSession, path: str) -> Artifact:
    """The artifact at `path`, verified by `load_artifact` (a remote one through a local copy)."""
    local = local_path(spark, path)
    if local is not None:
        return load_artifact(local)
    jvm, root, fs = _filesystem(spark, path)
    if not fs.exists(root):
        raise ArtifactError(f"model directory {str(root.toString())!r} does not exist")
    with tempfile.TemporaryDirectory(prefix="adspark-stage-") as tmp:
        for status in fs.listStatus(root):
            stream = fs.open(status.getPath())
            try:
                data = bytes(jvm.org.apache.commons.io.IOUtils.toByteArray(stream))
            finally:
                stream.close()
            (Path(tmp) / str(status.getPath().getName())).write_bytes(data)
        artifact = load_artifact(tmp)
    return dataclasses.replace(artifact, path=str(root.toString()))
