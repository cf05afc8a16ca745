"""Typed errors. Each message names the column, key or file at fault."""


class AdsparkError(Exception):
    """Base class: the CLI prints these as one clean line and exits non-zero."""

    exit_code = 2


class ConfigError(AdsparkError):
    """The YAML config or a command-line override is invalid."""


class SchemaError(AdsparkError):
    """The input table does not match the config or the model's feature schema."""


class ArtifactError(AdsparkError):
    """A model artifact is missing, tampered with, or of an unsupported format."""


class NotFittedError(AdsparkError):
    """A detector or preprocessor was used before `fit`."""


class TrainingError(AdsparkError):
    """Training failed (for example the loss diverged to NaN)."""


class OutputError(AdsparkError):
    """The scored output failed its checks and was not published."""


class DriftError(AdsparkError):
    """Tonight's data drifted from the training reference and monitor.on_drift is 'fail'."""

    exit_code = 3


class PathError(ConfigError):
    """Input, output and model directory overlap, or a path may not be replaced (it names both keys or the path)."""


class LeaseError(OutputError):
    """Another run is writing the same output right now (the message names its run id)."""
