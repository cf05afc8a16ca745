import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from adspark.artifact import MANIFEST, build_manifest, describe, load_artifact, save_artifact
from adspark.errors import ArtifactError
from adspark.runtime import build_scorer

SCHEMA = [{"name": "a", "type": "double", "role": "numeric"}]


@pytest.fixture()
def saved(small_detector, tmp_path: Path) -> Path:
    det, _ = small_detector
    manifest = build_manifest(det.manifest_(), det.files_, SCHEMA)
    save_artifact(tmp_path / "model", manifest, det.files_)
    return tmp_path / "model"


def test_round_trip_scores_identically(small_detector, saved: Path) -> None:
    det, table = small_detector
    art = load_artifact(saved)
    assert art.kind == "autoencoder" and art.threshold == det.threshold_
    assert set(art.manifest["files"]) == set(det.files_)
    assert sorted(p.name for p in saved.iterdir()) == sorted([MANIFEST, *det.files_])
    scorer = build_scorer(art.manifest, art.files)
    cols = [table.column(c) for c in det.preprocessor.columns]
    np.testing.assert_array_equal(scorer.score_arrays(cols), det.decision_function(table))
    text = describe(art)
    assert "autoencoder" in text and "sha256:" in text and "amount" in text


def test_manifest_holds_versions_and_checksums(saved: Path) -> None:
    m = json.loads((saved / MANIFEST).read_text())
    assert m["format_version"] == 2
    assert {"tensorflow", "onnxruntime", "pyspark", "python"} <= set(m["versions"])
    for name, digest in m["files"].items():
        assert len(digest) == 64 and (saved / name).exists()


def test_tampered_file_fails_integrity(saved: Path) -> None:
    onnx = next(saved.glob("*.onnx"))
    data = bytearray(onnx.read_bytes())
    data[-1] ^= 0xFF
    onnx.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=rf"{onnx.name}.*checksum mismatch.*integrity"):
        load_artifact(saved)


def test_pickle_and_keras_files_are_never_loaded(saved: Path) -> None:
    (saved / "model.pkl").write_bytes(pickle.dumps({"x": 1}))
    with pytest.raises(ArtifactError, match="model.pkl"):
        load_artifact(saved)
    (saved / "model.pkl").unlink()
    (saved / "net.keras").write_bytes(b"PK\x03\x04 lambda layer")
    with pytest.raises(ArtifactError, match="net.keras"):
        load_artifact(saved)


def test_a_pickle_listed_in_the_manifest_is_still_refused(saved: Path) -> None:
    payload = pickle.dumps({"x": 1})
    (saved / "evil.pkl").write_bytes(payload)
    m = json.loads((saved / MANIFEST).read_text())
    import hashlib

    m["files"]["evil.pkl"] = hashlib.sha256(payload).hexdigest()
    (saved / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(ArtifactError, match="evil.pkl.*refusing"):
        load_artifact(saved)


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda m: m.update(format_version=99), "format_version 99 is newer"),
        (lambda m: m.update(kind="forest"), "unknown model kind 'forest'"),
        (lambda m: m.pop("threshold"), "missing key 'threshold'"),
    ],
)
def test_bad_manifests(saved: Path, edit, needle: str) -> None:
    m = json.loads((saved / MANIFEST).read_text())
    edit(m)
    (saved / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(ArtifactError, match=needle):
        load_artifact(saved)


def test_a_format_1_manifest_of_one_network_still_loads(small_detector, tmp_path: Path) -> None:
    """Artifacts written before format 2 (one network, no `combine`) load and score as they did."""
    det, table = small_detector
    network = det.manifest_()["model"]["members"][0]  # the mse network, as one network saved it
    one = {**det.manifest_(), "model": network["model"]}
    files = {name: det.files_[name] for name in network["model"]["onnx_files"]}
    manifest = build_manifest(one, files, SCHEMA)
    manifest["format_version"] = 1
    save_artifact(tmp_path / "old", manifest, files)
    art = load_artifact(tmp_path / "old")
    assert art.manifest["format_version"] == 1
    cols = [table.column(c) for c in det.preprocessor.columns]
    expected = build_scorer({**one, "kind": "autoencoder"}, files).score_arrays(cols)
    np.testing.assert_array_equal(build_scorer(art.manifest, art.files).score_arrays(cols), expected)


def test_missing_dir_and_garbage_manifest(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="does not exist"):
        load_artifact(tmp_path / "nope")
    (tmp_path / "m").mkdir()
    with pytest.raises(ArtifactError, match="manifest.json: missing"):
        load_artifact(tmp_path / "m")
    (tmp_path / "m" / MANIFEST).write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        load_artifact(tmp_path / "m")


def test_save_replaces_atomically(small_detector, saved: Path) -> None:
    det, _ = small_detector
    manifest = build_manifest(det.manifest_(), det.files_, SCHEMA)
    again = save_artifact(saved, manifest, det.files_)
    assert [p.name for p in saved.parent.iterdir() if p.name.startswith(".")] == []
    assert load_artifact(saved).digest == again.digest
