"""The input contract: which columns play which role, and are their types right.

Everything here runs on the driver against the table's schema only, before any
data is read at scale, so a bad config or table fails in seconds with one line
naming the column.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from adspark.config import JobConfig

if TYPE_CHECKING:
    from adspark.config import OutputConfig
from adspark.errors import SchemaError

SCORE_COL = "anomaly_score"
FLAG_COL = "is_anomaly"
PERCENTILE_COL = "anomaly_percentile"
REASONS_COL = "top_features"
NUMERIC_TYPES = (T.ByteType, T.ShortType, T.IntegerType, T.LongType, T.FloatType, T.DoubleType, T.DecimalType)
NUMERIC_OR_BOOL = (*NUMERIC_TYPES, T.BooleanType)
CATEGORICAL_TYPES = (T.StringType, T.BooleanType, T.ByteType, T.ShortType, T.IntegerType, T.LongType, T.DateType)
TIMESTAMP_TYPES = (T.TimestampType, T.TimestampNTZType, T.DateType, *NUMERIC_TYPES)
# Entities are hashed and compared; maps can be neither.
ENTITY_EXCLUDED_TYPES = (T.MapType,)


@dataclass(frozen=True)
class Roles:
    ids: list[str]
    numeric: list[str]
    categorical: list[str]
    entity: list[str] = field(default_factory=list)
    timestamp: str | None = None

    @property
    def features(self) -> list[str]:
        return self.numeric + self.categorical


def _type_name(dtype: T.DataType) -> str:
    return str(dtype.simpleString())


def _require_present(names: list[str], role: str, fields: dict[str, T.DataType]) -> None:
    for name in names:
        if name not in fields:
            avail = ", ".join(sorted(fields)) or "none"
            raise SchemaError(f"column {name!r} ({role}) is not in the input table; available columns: {avail}")


@dataclass(frozen=True)
class OutputNames:
    """The columns adspark adds to the output, by the user's names; None = that column is left out."""

    score: str = SCORE_COL
    flag: str = FLAG_COL
    percentile: str | None = None
    reasons: str | None = None
    explain: int = 0  # top_features entries per row

    @classmethod
    def from_config(cls, out: OutputConfig) -> OutputNames:
        return cls(out.score_column, out.flag_column, out.percentile_column if out.percentile else None,
                   out.reasons_column if out.explain else None, out.explain)

    @property
    def extras(self) -> bool:
        """Whether the scorer returns more than the score (a percentile or reasons)."""
        return self.percentile is not None or self.reasons is not None

    @property
    def added(self) -> list[str]:
        """The added columns in output order: score, flag, then percentile and reasons when kept."""
        return [self.score, self.flag] + [c for c in (self.percentile, self.reasons) if c is not None]


def check_output_names(out: OutputConfig, kept: list[str]) -> None:
    """Refuse only when a column adspark adds would overwrite an input column that stays in the output."""
    for key, name in out.named_columns():
        if name in kept:
            raise SchemaError(f"output column {name!r} (output.{key}) would overwrite the input column {name!r}; "
                              f"rename the output column with output.{key} (or drop the input column with "
                              "output.columns)")


def not_finite(col: Column) -> Column:
    """Null, NaN or +-inf (a double column's missing values, and a score's failures)."""
    return col.isNull() | F.isnan(col) | (F.abs(col) == F.lit(float("inf")))


def resolve_roles(cfg: JobConfig, schema: T.StructType, layout: Sequence[str] = ()) -> Roles:
    """Assign roles from the config; default numeric features = every numeric column not otherwise named and not
    a partition column of the directory layout (`layout`: `dt=20261129/` is where a row is stored, not what it
    is; as a feature every night's new value would lie outside training)."""
    fields = {f.name: f.dataType for f in schema.fields}
    c = cfg.columns
    _require_present(c.id, "columns.id", fields)
    _require_present(c.exclude, "columns.exclude", fields)
    _require_present(c.categorical, "columns.categorical", fields)
    _require_present(cfg.output.partition_by, "output.partition_by", fields)
    _require_present(cfg.threshold.by, "threshold.by", fields)
    _check_ordering(c.entity, c.timestamp, fields)
    if c.numeric is None:
        taken = set(c.id) | set(c.exclude) | set(c.categorical) | set(c.ordering) | set(layout)
        numeric = [n for n, t in fields.items() if n not in taken and isinstance(t, NUMERIC_OR_BOOL)]
    else:
        _require_present(c.numeric, "columns.numeric", fields)
        numeric = list(c.numeric)
    for name in numeric:
        if not isinstance(fields[name], NUMERIC_OR_BOOL):
            raise SchemaError(
                f"column {name!r} (columns.numeric) has type {_type_name(fields[name])}; numeric features need "
                "a numeric or boolean type (list it under columns.categorical, or exclude it)"
            )
    for name in c.categorical:
        if not isinstance(fields[name], CATEGORICAL_TYPES):
            raise SchemaError(f"column {name!r} (columns.categorical) has unsupported type {_type_name(fields[name])}")
    if not numeric and not c.categorical:
        left_out = [n for n in layout if n in fields and isinstance(fields[n], NUMERIC_OR_BOOL)]
        why = f" (partition columns {', '.join(left_out)} are features only when listed under columns.numeric)" \
            if left_out and c.numeric is None else ""
        raise SchemaError(f"no feature columns: the table has no numeric columns left after columns.id/exclude{why}")
    return Roles(list(c.id), numeric, list(c.categorical), list(c.entity), c.timestamp)


def _check_ordering(entity: list[str], timestamp: str | None, fields: dict[str, T.DataType]) -> None:
    _require_present(entity, "columns.entity", fields)
    for name in entity:
        if not _type_ok("entity", fields[name]):
            raise SchemaError(f"column {name!r} (columns.entity) has type {_type_name(fields[name])}, which cannot "
                              "identify a stream; use atomic columns")
    if timestamp is None:
        return
    _require_present([timestamp], "columns.timestamp", fields)
    if not _type_ok("timestamp", fields[timestamp]):
        raise SchemaError(f"column {timestamp!r} (columns.timestamp) has type {_type_name(fields[timestamp])}; it "
                          "must be a timestamp, a date or a number")


def input_schema_record(roles: Roles, schema: T.StructType) -> list[dict[str, str]]:
    """The feature columns and their Spark types, as recorded in the artifact's manifest."""
    fields = {f.name: f.dataType for f in schema.fields}
    numeric = [{"name": n, "type": _type_name(fields[n]), "role": "numeric"} for n in roles.numeric]
    categorical = [{"name": n, "type": _type_name(fields[n]), "role": "categorical"} for n in roles.categorical]
    ordering = [{"name": n, "type": _type_name(fields[n]), "role": "entity"} for n in roles.entity]
    if roles.timestamp:
        ordering.append({"name": roles.timestamp, "type": _type_name(fields[roles.timestamp]), "role": "timestamp"})
    return numeric + categorical + ordering


def check_against_artifact(expected: list[dict[str, str]], schema: T.StructType, model_dir: str) -> None:
    """The table must have every feature the model was trained on, with a compatible type."""
    fields = {f.name: f.dataType for f in schema.fields}
    for col in expected:
        name, role = col["name"], col["role"]
        if name not in fields:
            raise SchemaError(
                f"column {name!r} ({role} column of the model in {model_dir}) is not in the input table"
            )
        if not _type_ok(role, fields[name]) or not widens(col["type"], _type_name(fields[name]), role):
            raise SchemaError(
                f"column {name!r} has type {_type_name(fields[name])} but the model in {model_dir} was trained "
                f"on it as a {role} column of type {col['type']} (only safe widening is accepted: "
                "int -> bigint -> double, float -> double, decimal -> double)"
            )


_INTEGERS = ("tinyint", "smallint", "int", "bigint")


def widens(recorded: str, current: str, role: str) -> bool:
    """Whether a column recorded as `recorded` may now be `current` without changing what the model sees.

    Integers widen to wider integers; for numeric roles integers, floats and
    decimals also widen to double (a categorical may not: 1 would become "1.0").
    """
    if recorded == current:
        return True
    if recorded in _INTEGERS and current in _INTEGERS:
        return _INTEGERS.index(current) >= _INTEGERS.index(recorded)
    if role in ("numeric", "timestamp") and current == "double":
        return recorded in (*_INTEGERS, "float") or recorded.startswith("decimal")
    return False


_ROLE_TYPES: dict[str, tuple[type[T.DataType], ...]] = {
    "numeric": NUMERIC_OR_BOOL,
    "categorical": CATEGORICAL_TYPES,
    "timestamp": TIMESTAMP_TYPES,
}


def _type_ok(role: str, dtype: T.DataType) -> bool:
    """Whether a column of this type can play this role (an entity: anything hashable)."""
    if role == "entity":
        return not isinstance(dtype, ENTITY_EXCLUDED_TYPES)
    return isinstance(dtype, _ROLE_TYPES.get(role, CATEGORICAL_TYPES))


def feature_columns(numeric: list[str], categorical: list[str]) -> list[Column]:
    """Features cast on the JVM side, so Python receives only float64 and string arrays."""
    num = [column(n).cast("double").alias(n) for n in numeric]
    cat = [column(n).cast("string").alias(n) for n in categorical]
    return num + cat


def column(name: str) -> Column:
    """A column by its exact name, even one with dots or backticks in it."""
    return F.col("`" + name.replace("`", "``") + "`")


def output_columns(cfg: JobConfig, df: DataFrame, ids: list[str]) -> list[str]:
    """Every input column by default; `output.columns` narrows it (ids first, then the listed ones)."""
    if cfg.output.columns is None:
        return list(df.columns)
    fields = {f.name: f.dataType for f in df.schema.fields}
    _require_present(cfg.output.columns, "output.columns", fields)
    keep = ids + [c for c in cfg.output.columns if c not in ids]
    keep += [c for c in cfg.output.partition_by if c not in keep]
    keep += [c for c in cfg.threshold.by if c not in keep]  # top_k segments need their columns
    return keep


def check_segments(cfg: JobConfig, df: DataFrame) -> None:
    """threshold.by (top_k segments) must name input columns."""
    _require_present(cfg.threshold.by, "threshold.by", {f.name: f.dataType for f in df.schema.fields})


def check_no_missing(df: DataFrame, numeric: list[str]) -> None:
    """For `on_missing: fail`: one aggregation over the numeric features, before any work."""
    if not numeric:
        return
    exprs = []
    for name in numeric:
        bad = not_finite(column(name).cast("double"))
        exprs.append(F.sum(bad.cast("long")).alias(name))
    row = df.agg(*exprs).first()
    if row is None:
        return
    for name in numeric:
        if row[name]:
            raise SchemaError(
                f"column {name!r} has {row[name]} null, NaN or infinite value(s) and preprocess.on_missing is 'fail'"
            )


def describe_roles(cfg: JobConfig, schema: T.StructType, roles: Roles, layout: Sequence[str] = ()) -> list[str]:
    """Log lines: the feature columns, and each column left out with what to do to use it."""
    lines = [f"features: numeric {', '.join(roles.numeric) or '-'}; categorical {', '.join(roles.categorical) or '-'}"]
    named = set(roles.features) | set(roles.ids) | set(cfg.columns.exclude) | set(cfg.columns.ordering)
    for f in schema.fields:
        if f.name in named:
            continue
        kind = _type_name(f.dataType)
        if isinstance(f.dataType, NUMERIC_OR_BOOL) and f.name in layout:
            hint = "a partition column of the directory layout; list it under columns.numeric to use it"
        elif isinstance(f.dataType, NUMERIC_OR_BOOL):
            hint = "list it under columns.numeric (or columns.categorical) to use it"
        elif isinstance(f.dataType, CATEGORICAL_TYPES):
            hint = "list it under columns.categorical to use it"
        else:
            hint = "this type cannot be a feature"
        lines.append(f"{kind} column `{f.name}` ignored: {hint}")
    return lines
