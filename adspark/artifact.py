"""The model artifact: a directory with manifest.json plus ONNX file(s).

No pickle, joblib, HDF5 or .keras files, ever: an artifact is data, never code.
Loading checks the format version, the model kind, that the directory holds
exactly the files the manifest lists, and every file's sha256, before anything
is parsed or any table is read.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import time
import uuid
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from adspark import __version__
from adspark.errors import AdsparkError, ArtifactError, PathError
from adspark.runtime import KNOWN_KINDS, build_scorer

# 2: a model may list members of its own kind (model.loss: mse+welsch) with a `combine` rule; an adspark
# that reads only 1 refuses such a manifest by its version instead of failing on its keys. 1 still loads.
FORMAT_VERSION = 2
MANIFEST = "manifest.json"
MODEL_REPORT = "report.html"  # the model's page (adspark/report), listed and checksummed like the ONNX files
# Formats that can carry executable code; refused even if a manifest lists them.
FORBIDDEN_SUFFIXES = (".pkl", ".pickle", ".joblib", ".h5", ".hdf5", ".keras", ".pb", ".npy", ".npz", ".py")
_VERSIONED = ("adspark", "tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime", "numpy", "pyarrow", "pyspark")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    versions["adspark"] = __version__
    return versions


@dataclass(frozen=True)
class Artifact:
    path: str
    manifest: dict[str, Any]
    files: dict[str, bytes]
    digest: str  # sha256 of manifest.json, which pins every other file

    @property
    def kind(self) -> str:
        return str(self.manifest["kind"])

    @property
    def threshold(self) -> float:
        """The score threshold; NaN for top_k, which flags a number of rows instead."""
        value = self.manifest["threshold"]["threshold"]
        return float("nan") if value is None else float(value)

    @property
    def input_schema(self) -> list[dict[str, str]]:
        return list(self.manifest["input_schema"])


def build_manifest(core: dict[str, Any], files: dict[str, bytes], input_schema: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "kind": core["kind"],
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "input_schema": input_schema,
        **{k: v for k, v in core.items() if k != "kind"},
        "versions": library_versions(),
        "files": {name: sha256(data) for name, data in sorted(files.items())},
    }


def manifest_bytes(manifest: dict[str, Any]) -> bytes:
    """manifest.json's bytes as written to disk; their sha256 is the artifact's digest."""
    return json.dumps(manifest, indent=2, sort_keys=False).encode()


def unsaved_artifact(manifest: dict[str, Any], files: dict[str, bytes]) -> Artifact:
    """A freshly trained artifact held in memory, with the digest it will have once saved."""
    return Artifact("", manifest, dict(files), sha256(manifest_bytes(manifest)))


def save_artifact(model_dir: str | Path, manifest: dict[str, Any], files: dict[str, bytes]) -> Artifact:
    """Write the artifact next to its target and swap it in, so a crash never leaves half a model."""
    target = Path(model_dir)
    for name in files:
        if name == MANIFEST or not plain_name(name) or name.endswith(FORBIDDEN_SUFFIXES):
            raise ArtifactError(f"refusing to write artifact file {name!r}")
    if target.exists() and (not target.is_dir() or (any(target.iterdir()) and not (target / MANIFEST).is_file())):
        raise PathError(f"model directory {str(target)!r} exists and is not an adspark model directory (no "
                        f"{MANIFEST}); refusing to replace it (move it away or choose another path)")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    for name, data in files.items():
        (tmp / name).write_bytes(data)
    raw = manifest_bytes(manifest)
    (tmp / MANIFEST).write_bytes(raw)
    old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
    if target.exists():
        os.replace(target, old)
    os.replace(tmp, target)
    shutil.rmtree(old, ignore_errors=True)
    return Artifact(str(target), manifest, dict(files), sha256(raw))


def _read_manifest(root: Path) -> tuple[dict[str, Any], bytes]:
    if not root.is_dir():
        raise ArtifactError(f"model directory {str(root)!r} does not exist (train one with `adspark train`)")
    path = root / MANIFEST
    if not path.is_file():
        raise ArtifactError(f"{path}: missing; {str(root)!r} is not an adspark model directory")
    raw = path.read_bytes()
    try:
        manifest = json.loads(raw)
    except ValueError as err:
        raise ArtifactError(f"{path}: not valid JSON ({err}); the artifact is corrupt") from None
    if not isinstance(manifest, dict):
        raise ArtifactError(f"{path}: expected a JSON object; the artifact is corrupt")
    return manifest, raw


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class _SchemaColumn(_Open):
    name: str
    type: str
    role: str


class _Preprocessing(_Open):
    on_missing: str
    clip: float
    numeric: list[dict[str, Any]]
    categorical: list[dict[str, Any]]
    feature_names: list[str]


class _Threshold(_Open):
    method: str
    value: float
    threshold: float | None  # None for top_k: a number of rows, cut at scoring time


class ManifestSchema(_Open):
    """The keys every reader relies on, with their types; other keys (added by newer code) pass through."""

    format_version: int
    kind: str
    input_schema: list[_SchemaColumn]
    preprocessing: _Preprocessing
    model: dict[str, Any]
    threshold: _Threshold
    files: dict[str, str]

    @field_validator("files")
    @classmethod
    def _plain_names(cls, files: dict[str, str]) -> dict[str, str]:
        for name in files:
            if not plain_name(name):
                raise ValueError(f"file name {name!r} is not a plain name inside the model directory")
        return files


def plain_name(name: str) -> bool:
    """A file name with no directory part: never '../x', '/etc/x', 'a/b', '.', '..' or empty."""
    return bool(name) and name not in (".", "..") and "/" not in name and "\\" not in name and "\x00" not in name


def _check_schema(manifest: dict[str, Any], path: Path) -> None:
    try:
        ManifestSchema.model_validate(manifest)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        if first["type"] == "missing":
            raise ArtifactError(f"{path}: missing key {where!r}; the artifact is corrupt") from None
        raise ArtifactError(f"{path}: key {where!r}: {first['msg']}; the artifact is corrupt") from None


def _check_header(manifest: dict[str, Any], path: Path) -> None:
    version = manifest.get("format_version")
    if not isinstance(version, int):
        raise ArtifactError(f"{path}: no integer format_version; not an adspark manifest")
    if version > FORMAT_VERSION:
        raise ArtifactError(
            f"{path}: format_version {version} is newer than this adspark supports ({FORMAT_VERSION}); upgrade adspark"
        )
    if manifest.get("kind") not in KNOWN_KINDS:
        raise ArtifactError(f"{path}: unknown model kind {manifest.get('kind')!r} (known: {', '.join(KNOWN_KINDS)})")
    _check_schema(manifest, path)


def _read_files(root: Path, listed: dict[str, str]) -> dict[str, bytes]:
    present = {p.name for p in root.iterdir()} - {MANIFEST}
    for name in sorted(present):
        if name.endswith(FORBIDDEN_SUFFIXES):
            raise ArtifactError(f"{root / name}: refusing to load a model directory holding a code-bearing file")
        if name not in listed:
            raise ArtifactError(f"{root / name}: file not listed in manifest.json; integrity check failed")
    files: dict[str, bytes] = {}
    for name, digest in listed.items():
        path = root / name
        if not path.is_file():
            raise ArtifactError(f"{path}: listed in manifest.json but missing; integrity check failed")
        data = path.read_bytes()
        if sha256(data) != digest:
            raise ArtifactError(f"{path}: sha256 checksum mismatch; integrity check failed (file changed or corrupt)")
        files[name] = data
    return files


def load_artifact(model_dir: str | Path) -> Artifact:
    root = Path(model_dir)
    manifest, raw = _read_manifest(root)
    _check_header(manifest, root / MANIFEST)
    files = _read_files(root, dict(manifest["files"]))
    _check_decodable(root, manifest, files)
    return Artifact(str(root), manifest, files, sha256(raw))


def _check_decodable(root: Path, manifest: dict[str, Any], files: dict[str, bytes]) -> None:
    """Build the scorer (its onnxruntime sessions) here on the driver, before any data is read.

    A file that matches its checksum but does not decode fails now, once, naming
    the file, instead of failing every scoring task and its retries.
    """
    try:
        build_scorer(manifest, files)
    except ArtifactError as err:
        raise ArtifactError(f"{root}/{err}") from None
    except AdsparkError:
        raise
    except Exception as err:  # a manifest that passed the schema but does not fit its kind
        raise ArtifactError(f"{root / MANIFEST}: cannot build the {manifest['kind']} scorer "
                            f"({type(err).__name__}: {err}); the artifact is corrupt") from None


def describe(artifact: Artifact) -> str:
    """A readable summary of a manifest, for `adspark inspect`."""
    m = artifact.manifest
    thr = m["threshold"]
    lines = [
        f"artifact      {artifact.path}",
        f"kind          {m['kind']} (format {m['format_version']}, created {m.get('created_at', '?')})",
        f"digest        sha256:{artifact.digest}",
        f"threshold     {artifact.threshold:.6g} ({thr['method']} {thr['value']})",
        "input columns:",
        *(f"  {c['name']:<28} {c['type']:<10} {c['role']}" for c in m["input_schema"]),
        f"features      {len(m['preprocessing']['feature_names'])} after preprocessing",
    ]
    for spec in m["preprocessing"]["numeric"]:
        tf = "signed-log" if spec["log"] else "linear"
        lines.append(f"  {spec['name']:<28} median={spec['median']:.6g} scale={spec['scale']:.6g} {tf}")
    sequence = m["kind"] == "lstm"
    for spec in m["preprocessing"]["categorical"]:
        coding = "embedded with null/unseen/other codes" if sequence else f"one-hot top {len(spec['onehot'])}"
        lines.append(f"  {spec['name']:<28} {len(spec['counts'])} known values, {coding}")
    if sequence:
        spec = m["model"]
        lines.append(f"window        {spec['window']} events of history per scored event, LSTM {spec['hidden']}")
    if m["kind"] == "ensemble":
        kinds = " + ".join(member["kind"] for member in m["model"]["members"])
        lines.append(f"members       {kinds} (score: mean quantile level in each member's training scores)")
    elif "members" in m["model"]:  # a family trained once per loss (model.loss: mse+welsch)
        losses = " + ".join(member["model"]["loss"] for member in m["model"]["members"])
        how = "geometric mean" if m["model"].get("combine") == "geometric" else "mean quantile level"
        lines.append(f"networks      one per loss: {losses} (score: {how} of theirs)")
    training = m.get("training", {})
    scalars = (f"{k}={v}" for k, v in training.items() if not isinstance(v, dict | list))
    lines.append("training      " + ", ".join(scalars))
    lines.append("files:")
    lines += [f"  {name:<28} sha256:{digest}" for name, digest in m["files"].items()]
    lines.append("versions      " + ", ".join(f"{k} {v}" for k, v in m.get("versions", {}).items()))
    if MODEL_REPORT in m["files"]:
        lines.append(f"report        {Path(artifact.path).resolve() / MODEL_REPORT} (open it in a browser)")
    return "\n".join(lines)
