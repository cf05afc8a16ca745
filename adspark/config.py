"""Job configuration: strict pydantic models loaded from YAML.

Unknown keys are rejected everywhere so that a typo (``sample_row:``) fails
loudly instead of silently falling back to a default.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from adspark.errors import ConfigError

log = logging.getLogger("adspark.config")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class InputConfig(_Strict):
    path: str | None = None
    format: Literal["parquet", "orc", "csv", "json"] = "parquet"
    # YAML scalars as written (`header: true`, `samplingRatio: 0.5`); handed to Spark as its option strings.
    options: dict[str, str | bool | int | float] = Field(default_factory=dict)

    def spark_options(self) -> dict[str, str]:
        return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in self.options.items()}


class ColumnsConfig(_Strict):
    id: list[str] = Field(default_factory=list)
    numeric: list[str] | None = None
    categorical: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)
    # Sequence models (model.kind: lstm): one ordered stream per entity, ordered by timestamp.
    entity: list[str] = Field(default_factory=list)
    timestamp: str | None = None

    @model_validator(mode="after")
    def _no_overlap(self) -> ColumnsConfig:
        roles = {"id": self.id, "numeric": self.numeric or [], "categorical": self.categorical}
        seen: dict[str, str] = {}
        for role, cols in roles.items():
            for col in cols:
                if col in seen:
                    raise ValueError(f"column {col!r} is listed both in columns.{seen[col]} and columns.{role}")
                seen[col] = role
        for col in self.exclude:
            if seen.get(col) in ("numeric", "categorical"):
                raise ValueError(f"column {col!r} is excluded but also listed in columns.{seen[col]}")
        for role, cols in (("entity", self.entity), ("timestamp", [self.timestamp] if self.timestamp else [])):
            for col in cols:
                if seen.get(col) in ("numeric", "categorical"):
                    raise ValueError(f"column {col!r} is columns.{role} and cannot also be in columns.{seen[col]}")
        return self

    @property
    def ordering(self) -> list[str]:
        """Columns that place a row in its stream; never features."""
        return self.entity + ([self.timestamp] if self.timestamp else [])


MemberKind = Literal["autoencoder", "gan", "iforest"]  # the row-wise kinds an ensemble can combine
# The pair measured at or above its better member on the mean of bench/quality.py's tables (bench/README.md);
# autoencoder + iforest was below the autoencoder alone on every group of tables.
DEFAULT_MEMBERS: tuple[MemberKind, ...] = ("autoencoder", "gan")


# The error units of the reconstruction families and the features their knee softens
# (adspark/models/reconstruction.py: typical_squared_error, softened_inputs).
TypicalError = Literal["trimmed", "rms", "median", "auto"]
RowLoss = Literal["mse", "welsch"]  # one network's training loss (adspark/models/losses.py)
ModelLoss = Literal["mse", "welsch", "mse+welsch"]  # "mse+welsch": one network per loss, their scores combined
KneeFeatures = Literal["rare", "all"]


class ModelConfig(_Strict):
    """The detector family and its network.

    `hidden`, `activation` are shared by all families (for `gan`: the encoder,
    mirrored by the generator; for `lstm`: the stacked LSTM layer sizes). The
    family-only options below are ignored by the others; see adspark/models/gan.py
    and adspark/models/lstm.py for what each one does.
    """

    kind: Literal["autoencoder", "gan", "lstm", "iforest", "ensemble"] = "autoencoder"
    hidden: list[int] | None = None
    activation: Literal["relu", "elu", "tanh", "leaky_relu"] = "relu"
    ensemble: int = Field(1, ge=1, le=16)
    # autoencoder, gan: a softened feature's error (in typical training errors) counts squared up to this
    # many, logarithmically beyond (adspark/runtime/tabular.py, soften); null = squared throughout.
    # `knee_features` says which features are softened: "rare" (numeric features at one value in at least
    # half of the training rows: pixels, grades, mostly-zero counts) or "all" that moved in training. Chosen on the
    # shared benchmark (bench/README.md, "The error knee").
    error_knee: float | None = Field(1.5, gt=0.0)
    knee_features: KneeFeatures = "rare"
    # autoencoder, gan: each feature's typical training error, which its error is divided by: "trimmed" (the
    # mean squared error over the kept training rows without the 15% whose overall error is largest, shrunk
    # at most 5-fold from the plain mean), "rms" (the root mean square over the kept training rows), "median"
    # (robust to the anomalies of a heavily contaminated sample, but it amplifies a feature whose normal rows
    # sometimes miss by a lot), or "auto": the median where at least a tenth of the rows (a quarter for the
    # rarely-moving features) miss by over 4 median errors, else the root mean square
    # (adspark/models/reconstruction.py; bench/README.md, "The error unit").
    typical_error: TypicalError = "trimmed"
    # autoencoder, gan: the training loss of each row's mean squared reconstruction error: "mse", or
    # "welsch", which flattens beyond the batch's median row error so the worst-reconstructed rows (a
    # sample's own anomalies) pull less on the weights (adspark/models/losses.py), or "mse+welsch": one
    # network trained with each, their scores combined (the autoencoder: the geometric mean of the two errors;
    # the gan: the mean quantile level, as an ensemble's). null = the kind's default: "mse+welsch" for the
    # autoencoder, "mse" for the gan and an ensemble's members (bench/README.md, "The training loss")
    loss: ModelLoss | None = None
    # --- kind: autoencoder -------------------------------------------------------
    dropout: float = Field(0.0, ge=0.0, lt=1.0)  # after every hidden layer but the code layer
    batch_norm: bool = False  # batch normalisation before every hidden activation but the code layer's
    # --- kind: gan -------------------------------------------------------------
    latent: int | None = Field(None, ge=1, le=1024)  # code size; None = the last `hidden` size
    disc_hidden: list[int] | None = None  # discriminator layers, the last is the feature layer
    score_alpha: float = Field(0.9, ge=0.0, le=1.0)  # weight of reconstruction vs feature matching
    adversarial_weight: float = Field(0.03, ge=0.0, le=100.0)  # of the adversarial + feature-matching loss
    max_steps: int | None = Field(None, ge=1)  # cap on training steps over all epochs; None = per kind
    # --- kind: lstm ------------------------------------------------------------
    window: int = Field(32, ge=1, le=1024)  # events of history before each scored event
    block_events: int = Field(50_000, ge=1)  # a longer stream is scored in parallel blocks of this many events
    # --- kind: iforest -----------------------------------------------------------
    n_estimators: int = Field(200, ge=1, le=5000)  # trees
    max_samples: int | Literal["auto"] = "auto"  # rows per tree; auto = min(256, sample rows)
    # --- kind: ensemble ----------------------------------------------------------
    members: list[MemberKind] = Field(default_factory=lambda: list(DEFAULT_MEMBERS))  # rank-averaged kinds

    def row_loss(self) -> ModelLoss:
        """`loss`, or the kind's default when it is null: mse+welsch for the autoencoder, mse for the GAN and
        for the members of an ensemble (which combines networks of its own)."""
        if self.loss is not None:
            return self.loss
        return "mse+welsch" if self.kind == "autoencoder" else "mse"

    def step_cap(self) -> int | None:
        """Training steps allowed over all epochs; None = no cap (the autoencoder's default)."""
        return self.max_steps or {"gan": 8000, "lstm": 2000}.get(self.kind)

    @field_validator("hidden", "disc_hidden")
    @classmethod
    def _positive(cls, v: list[int] | None, info: ValidationInfo) -> list[int] | None:
        if v is not None and (not v or any(h < 1 for h in v)):
            raise ValueError(f"model.{info.field_name} must be a non-empty list of positive layer sizes")
        return v

    @model_validator(mode="after")
    def _gan_single_member(self) -> ModelConfig:
        if self.kind == "gan" and self.ensemble != 1:
            raise ValueError("model.ensemble must be 1 for kind 'gan' (GAN ensembles are not supported)")
        return self

    @field_validator("members")
    @classmethod
    def _distinct_members(cls, v: list[str]) -> list[str]:
        if len(v) < 2 or len(set(v)) != len(v):
            raise ValueError("model.members must list at least two different kinds")
        return v

    @field_validator("max_samples")
    @classmethod
    def _enough_samples(cls, v: int | str) -> int | str:
        if isinstance(v, int) and v < 2:
            raise ValueError("model.max_samples must be 'auto' or at least 2 rows per tree")
        return v


# `train.min_steps` raises the epochs of a small sample up to this many.
MAX_EPOCHS = 500


class TrainConfig(_Strict):
    sample_rows: int = Field(200_000, ge=10)
    epochs: int = Field(30, ge=1)
    # A small sample gets more epochs, so that training takes at least this many steps (30 epochs of a
    # 200-row sample are 30 steps). Off by default: it helped the small, lightly contaminated tables and
    # hurt the heavily contaminated ones (bench/README.md, "Ablation").
    min_steps: int = Field(0, ge=0)
    seed: int = 42
    batch_size: int = Field(256, ge=1)
    learning_rate: float = Field(1e-3, gt=0)
    validation_split: float = Field(0.1, ge=0.0, lt=0.9)
    patience: int = Field(5, ge=1)
    trim: float = Field(0.05, ge=0.0, lt=0.5)

    def epochs_for(self, n_train: int) -> int:
        """Epochs to run on `n_train` rows: `epochs`, raised so training takes `min_steps` steps (≤ MAX_EPOCHS)."""
        steps = max(1, math.ceil(n_train / self.batch_size))
        return max(self.epochs, min(MAX_EPOCHS, math.ceil(self.min_steps / steps)))


class PreprocessConfig(_Strict):
    on_missing: Literal["impute", "fail"] = "impute"
    # standard: (x - mean) / std; robust: (x - median) / IQR-based scale (see adspark/features.py)
    scaling: Literal["robust", "standard"] = "robust"
    transform: Literal["auto", "none", "log"] = "auto"
    transforms: dict[str, Literal["auto", "none", "log"]] = Field(default_factory=dict)
    clip: float = Field(5.0, gt=0)
    max_categories: int = Field(1000, ge=1)
    onehot_max: int = Field(16, ge=0)


class ThresholdConfig(_Strict):
    """How rows are flagged; see adspark/decisions.py for each method."""

    method: Literal["contamination", "fixed", "mad", "pot", "top_k"] = "contamination"
    value: float = 0.01
    level: float = Field(0.98, gt=0.5, lt=1.0)  # pot: the initial threshold's quantile
    by: list[str] = Field(default_factory=list)  # top_k: one budget per segment of these columns

    @model_validator(mode="after")
    def _range(self) -> ThresholdConfig:
        if self.method == "contamination" and not 0.0 < self.value < 0.5:
            raise ValueError("threshold.value must be in (0, 0.5) for method 'contamination'")
        if self.method == "mad" and not self.value > 0.0:
            raise ValueError("threshold.value must be > 0 for method 'mad' (the number of scaled MADs)")
        if self.method == "pot" and not 0.0 < self.value < 1.0 - self.level:
            raise ValueError(f"threshold.value must be in (0, 1 - threshold.level = {1 - self.level:.6g}) for "
                             "method 'pot' (the exceedance probability)")
        if self.method == "top_k" and not (self.value >= 1 and float(self.value).is_integer()):
            raise ValueError("threshold.value must be a whole number >= 1 for method 'top_k' (rows to flag)")
        if self.by and self.method != "top_k":
            raise ValueError("threshold.by applies to method 'top_k' only")
        return self


class OutputConfig(_Strict):
    path: str | None = None
    mode: Literal["overwrite", "error"] = "overwrite"
    columns: list[str] | None = None
    partition_by: list[str] = Field(default_factory=list)
    score_column: str = Field("anomaly_score", min_length=1)
    flag_column: str = Field("is_anomaly", min_length=1)
    percentile: bool = True
    percentile_column: str = Field("anomaly_percentile", min_length=1)
    explain: int = Field(3, ge=0, le=100)  # top_features entries per row; 0 = no reasons column
    reasons_column: str = Field("top_features", min_length=1)

    @model_validator(mode="after")
    def _distinct_names(self) -> OutputConfig:
        seen: dict[str, str] = {}
        for key, name in self.named_columns():
            if name in seen:
                raise ValueError(f"output.{key} and output.{seen[name]} are both {name!r}; output columns need "
                                 "distinct names")
            seen[name] = key
        return self

    def named_columns(self) -> list[tuple[str, str]]:
        """(config key, column name) of every column adspark adds to the output."""
        names = [("score_column", self.score_column), ("flag_column", self.flag_column)]
        if self.percentile:
            names.append(("percentile_column", self.percentile_column))
        if self.explain:
            names.append(("reasons_column", self.reasons_column))
        return names


class MonitorConfig(_Strict):
    """Drift against the training reference and the run report (adspark/drift.py, adspark/report/)."""

    max_psi: float = Field(0.25, gt=0)  # a feature whose PSI exceeds this has drifted
    on_drift: Literal["warn", "fail"] = "warn"  # fail: exit code 3, nothing published
    # Configs written for earlier versions (where the lstm's drift came from a sample) still load.
    sample_rows: int | None = Field(None, ge=100)
    drift: bool = True  # compute drift at all
    report: bool = True  # write _adspark_report.html beside _adspark_run.json

    @model_validator(mode="after")
    def _no_sample(self) -> MonitorConfig:
        if self.sample_rows is not None:
            log.warning("monitor.sample_rows is ignored: drift is counted over every input row in the scoring pass")
        return self


class JobConfig(_Strict):
    input: InputConfig = Field(default_factory=InputConfig)
    columns: ColumnsConfig = Field(default_factory=ColumnsConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    preprocess: PreprocessConfig = Field(default_factory=PreprocessConfig)
    threshold: ThresholdConfig = Field(default_factory=ThresholdConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    monitor: MonitorConfig = Field(default_factory=MonitorConfig)
    model_dir: str | None = None
    spark: dict[str, str | int | float | bool] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _sequence_columns(self) -> JobConfig:
        if self.model.kind == "lstm" and not self.columns.timestamp:
            raise ValueError("model.kind 'lstm' needs columns.timestamp (the column that orders each stream)")
        return self

    def digest(self) -> str:
        """A stable hash of the effective config, recorded in run manifests."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()

    def require(self, *fields: str) -> None:
        """Fail with a clear message when a path needed by a command is unset."""
        values = {"input.path": self.input.path, "output.path": self.output.path, "model_dir": self.model_dir}
        for name in fields:
            if not values[name]:
                flag = {"input.path": "--input", "output.path": "--output", "model_dir": "--model-dir"}[name]
                raise ConfigError(f"config: {name} is not set (set it in the YAML file or pass {flag})")


def _describe(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "<top level>"
    if first["type"] == "extra_forbidden":
        return f"{source}: unknown key {where!r}"
    return f"{source}: {where}: {first['msg']}"


def parse_config(data: Any, source: str = "config") -> JobConfig:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of keys, not {type(data).__name__}")
    try:
        return JobConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_describe(err, source)) from None


_FREE_KEYS = ("spark", "input.options", "preprocess.transforms")  # sections whose own keys may hold dots


def _set(data: dict[str, Any], assignment: str) -> None:
    """One `--set KEY=VALUE`: a dotted key, a YAML value (`0.02`, `true`, `[a, b]`, `null`)."""
    key, sep, raw = assignment.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {assignment!r}: expected KEY=VALUE, e.g. threshold.value=0.02")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as err:
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"--set {key}: invalid YAML value {raw!r} ({problem})") from None
    names = key.strip().split(".")
    node = data
    for depth, name in enumerate(names[:-1]):
        child = node.setdefault(name, {})
        if child is None:
            child = node[name] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"--set {key}: {'.'.join(names[:depth + 1])} is a value, not a section of keys")
        node = child
        if ".".join(names[: depth + 1]) in _FREE_KEYS:  # spark.sql.shuffle.partitions is one key of `spark`
            node[".".join(names[depth + 1 :])] = value
            return
    node[names[-1]] = value


def load_config(path: str | Path, sets: Sequence[str] = ()) -> JobConfig:
    """The YAML file, then each `--set KEY=VALUE` in order, validated together."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"cannot read config file {str(path)!r}: {err.strerror}") from None
    try:
        data = yaml.safe_load(text)  # safe loader: no Python object tags are ever constructed
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: invalid YAML: {err}") from None
    if not sets:
        return parse_config(data, str(path))
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return parse_config(data, str(path))  # the top-level error, as without --set
    for assignment in sets:
        _set(data, assignment)
    return parse_config(data, f"{path} with --set")


def apply_overrides(cfg: JobConfig, **paths: str | None) -> JobConfig:
    """Command-line flags win over the file."""
    updated = cfg.model_copy(deep=True)
    if paths.get("input"):
        updated.input.path = paths["input"]
    if paths.get("output"):
        updated.output.path = paths["output"]
    if paths.get("model_dir"):
        updated.model_dir = paths["model_dir"]
    return updated
