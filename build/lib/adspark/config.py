"""Job configuration: strict pydantic models loaded from YAML.

Unknown keys are rejected everywhere so that a typo (``sample_row:``) fails
loudly instead of silently falling back to a default.
"""

from __future__ import annotations

import hashlib
import json
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


class ModelConfig(_Strict):
    """The detector family and its network.

    `hidden`, `activation` are shared by all families (for `gan`: the encoder,
    mirrored by the generator; for `lstm`: the stacked LSTM layer sizes). The
    family-only options below are ignored by the others; see adspark/models/gan.py
    and adspark/models/lstm.py for what each one does.
    """

    kind: Literal["autoencoder", "gan", "lstm"] = "autoencoder"
    hidden: list[int] | None = None
    activation: Literal["relu", "elu", "tanh", "leaky_relu"] = "relu"
    ensemble: int = Field(1, ge=1, le=16)
    # --- kind: gan -------------------------------------------------------------
    latent: int | None = Field(None, ge=1, le=1024)  # code size; None = the last `hidden` size
    disc_hidden: list[int] | None = None  # discriminator layers, the last is the feature layer
    score_alpha: float = Field(0.9, ge=0.0, le=1.0)  # weight of reconstruction vs feature matching
    adversarial_weight: float = Field(0.1, ge=0.0, le=100.0)  # of the adversarial + feature-matching loss
    max_steps: int | None = Field(None, ge=1)  # cap on gan/lstm training steps over all epochs; None = per kind
    # --- kind: lstm ------------------------------------------------------------
    window: int = Field(32, ge=1, le=1024)  # events of history before each scored event

    def step_cap(self) -> int:
        """Training steps allowed over all epochs (gan and lstm stop early otherwise)."""
        return self.max_steps or {"gan": 8000, "lstm": 2000}.get(self.kind, 8000)

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


class TrainConfig(_Strict):
    sample_rows: int = Field(200_000, ge=10)
    epochs: int = Field(30, ge=1)
    seed: int = 42
    batch_size: int = Field(256, ge=1)
    learning_rate: float = Field(1e-3, gt=0)
    validation_split: float = Field(0.1, ge=0.0, lt=0.9)
    patience: int = Field(5, ge=1)
    trim: float = Field(0.05, ge=0.0, lt=0.5)


class PreprocessConfig(_Strict):
    on_missing: Literal["impute", "fail"] = "impute"
    transform: Literal["auto", "none", "log"] = "auto"
    transforms: dict[str, Literal["auto", "none", "log"]] = Field(default_factory=dict)
    clip: float = Field(5.0, gt=0)
    max_categories: int = Field(1000, ge=1)
    onehot_max: int = Field(16, ge=0)


class ThresholdConfig(_Strict):
    method: Literal["contamination", "fixed"] = "contamination"
    value: float = 0.01

    @model_validator(mode="after")
    def _range(self) -> ThresholdConfig:
        if self.method == "contamination" and not 0.0 < self.value < 0.5:
            raise ValueError("threshold.value must be in (0, 0.5) for method 'contamination'")
        return self


class OutputConfig(_Strict):
    path: str | None = None
    mode: Literal["overwrite", "error"] = "overwrite"
    columns: list[str] | None = None
    partition_by: list[str] = Field(default_factory=list)


class JobConfig(_Strict):
    input: InputConfig = Field(default_factory=InputConfig)
    columns: ColumnsConfig = Field(default_factory=ColumnsConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    preprocess: PreprocessConfig = Field(default_factory=PreprocessConfig)
    threshold: ThresholdConfig = Field(default_factory=ThresholdConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
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


def load_config(path: str | Path) -> JobConfig:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"cannot read config file {str(path)!r}: {err.strerror}") from None
    try:
        data = yaml.safe_load(text)  # safe loader: no Python object tags are ever constructed
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: invalid YAML: {err}") from None
    return parse_config(data, str(path))


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
