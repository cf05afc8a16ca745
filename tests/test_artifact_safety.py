"""Artifacts that lie: undecodable ONNX, malformed manifests, escaping file names, changed column types."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pyspark.sql import types as T

from adspark.artifact import MANIFEST, build_manifest, load_artifact, save_artifact, sha256
from adspark.errors import ArtifactError, SchemaError
from adspark.schema import check_against_artifact, widens
from tests.conftest import REPO

SCHEMA = [{"name": "a", "type": "double", "role": "numeric"}]


@pytest.fixture()
def saved(small_detector, tmp_path: Path) -> Path:
    det, _ = small_detector
    save_artifact(tmp_path / "model", build_manifest(det.manifest_(), det.files_, SCHEMA), det.files_)
    return tmp_path / "model"


def _edit(model: Path, change) -> None:
    m = json.loads((model / MANIFEST).read_text())
    change(m)
    (model / MANIFEST).write_text(json.dumps(m))


def test_undecodable_onnx_matching_its_checksum_fails_before_any_data(saved: Path) -> None:
    onnx = next(saved.glob("*.onnx"))
    onnx.write_bytes(b"\x08\x07garbage that is not a protobuf graph")
    _edit(saved, lambda m: m["files"].update({onnx.name: sha256(onnx.read_bytes())}))
    with pytest.raises(ArtifactError, match=rf"{onnx.name}: not a loadable ONNX model"):
        load_artifact(saved)
    config = saved.parent / "job.yaml"
    config.write_text(f"input: {{path: {saved.parent / 'in'}}}\noutput: {{path: {saved.parent / 'out'}}}\n"
                      f"model_dir: {saved}\n")
    done = subprocess.run([sys.executable, "-m", "adspark.cli", "score", "--config", str(config)], cwd=REPO,
                          env=dict(os.environ), capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and onnx.name in done.stderr and "not a loadable ONNX model" in done.stderr
    assert "SparkContext" not in done.stderr  # refused before Spark started


@pytest.mark.parametrize(("change", "key"), [
    (lambda m: m["threshold"].pop("threshold"), "threshold.threshold"),
    (lambda m: m["preprocessing"].update(clip="wide"), "preprocessing.clip"),
    (lambda m: m.update(input_schema={"a": "double"}), "input_schema"),
    (lambda m: m["input_schema"][0].pop("role"), "input_schema.0.role"),
    (lambda m: m.pop("model"), "model"),
])
def test_manifest_schema_names_the_missing_or_mistyped_key(saved: Path, change, key: str) -> None:
    _edit(saved, change)
    with pytest.raises(ArtifactError, match=rf"manifest.json: (missing )?key '{key}'"):
        load_artifact(saved)


@pytest.mark.parametrize("name", ["../x.onnx", "/etc/passwd", "sub/x.onnx", "..", ""])
def test_file_names_must_be_plain_names_inside_the_directory(saved: Path, name: str) -> None:
    _edit(saved, lambda m: m["files"].update({name: "0" * 64}))
    with pytest.raises(ArtifactError, match="not a plain name inside the model directory"):
        load_artifact(saved)


@pytest.mark.parametrize(("recorded", "current", "role", "ok"), [
    ("int", "bigint", "numeric", True), ("bigint", "double", "numeric", True), ("float", "double", "numeric", True),
    ("decimal(10,2)", "double", "numeric", True), ("tinyint", "int", "categorical", True),
    ("bigint", "int", "numeric", False), ("double", "float", "numeric", False),
    ("int", "double", "categorical", False), ("date", "string", "categorical", False),
    ("string", "int", "categorical", False), ("timestamp", "date", "timestamp", False),
])
def test_type_widening(recorded: str, current: str, role: str, ok: bool) -> None:
    assert widens(recorded, current, role) is ok


def test_schema_check_names_the_column_whose_type_changed() -> None:
    expected = [{"name": "amount", "type": "int", "role": "numeric"},
                {"name": "day", "type": "date", "role": "categorical"}]
    widened = T.StructType([T.StructField("amount", T.DoubleType()), T.StructField("day", T.DateType())])
    check_against_artifact(expected, widened, "m")
    changed = T.StructType([T.StructField("amount", T.LongType()), T.StructField("day", T.StringType())])
    with pytest.raises(SchemaError, match=r"column 'day' has type string .* categorical column of type date"):
        check_against_artifact(expected, changed, "m")


def test_saving_never_replaces_a_foreign_directory(small_detector, tmp_path: Path) -> None:
    from adspark.errors import PathError

    det, _ = small_detector
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "cat.jpg").write_bytes(b"meow")
    with pytest.raises(PathError, match="photos.*not an adspark model directory"):
        save_artifact(foreign, build_manifest(det.manifest_(), det.files_, SCHEMA), det.files_)
    assert (foreign / "cat.jpg").read_bytes() == b"meow"
