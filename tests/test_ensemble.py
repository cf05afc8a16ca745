"""The ensemble kind (rank-averaged members) and reproducible training across fresh processes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from adspark.config import parse_config
from adspark.models import make_detector
from adspark.runtime.ensemble import RankTransform
from tests.conftest import N_OUTLIERS, make_table

NUMERIC = ["amount", "a", "b", "count"]
SMALL = {"model": {"kind": "ensemble", "members": ["autoencoder", "iforest"], "n_estimators": 50},
         "train": {"epochs": 6, "seed": 0, "patience": 3, "batch_size": 32}}  # fmt: skip


@pytest.fixture(scope="module")
def ensemble() -> tuple[object, pa.Table]:
    df = make_table(3000, seed=3)
    table = pa.table({c: df[c].astype("float64") for c in NUMERIC} | {"merchant": df["merchant"]})
    return make_detector(parse_config(SMALL), NUMERIC, ["merchant"]).fit(table), table


def _member_levels(det, table: pa.Table) -> np.ndarray:
    """Each member's score alone (one ONNX pass), as its quantile level in the frozen training grid."""
    from adspark.runtime import build_scorer

    m = det.manifest_()
    features = det.preprocessor.transform([table.column(c) for c in det.preprocessor.columns])
    levels = []
    for member in m["model"]["members"]:
        assert len(member["quantiles"]) == 1001 and member["quantiles"] == sorted(member["quantiles"])
        core = {"kind": member["kind"], "preprocessing": m["preprocessing"], "model": member["model"]}
        raw = build_scorer(core, det.files_).score_features(features)
        levels.append(np.interp(raw, member["quantiles"], np.linspace(0, 1, 1001)))
    return np.array(levels)


def test_score_is_the_mean_rank_of_the_members(ensemble) -> None:
    det, table = ensemble
    m = det.manifest_()
    assert m["kind"] == "ensemble" and [s["kind"] for s in m["model"]["members"]] == ["autoencoder", "iforest"]
    assert sorted(det.files_) == ["autoencoder_0.onnx", "iforest.onnx"] == m["model"]["onnx_files"]
    # an ensemble's members train with `mse` when model.loss is unset: one network each, not the
    # autoencoder's own default pair
    assert m["model"]["members"][0]["model"]["loss"] == "mse" and m["model"]["combine"] == "rank"
    scores = det.decision_function(table)
    np.testing.assert_allclose(scores, _member_levels(det, table).mean(axis=0), atol=2e-3)  # ties aside
    assert abs(np.mean(scores) - 0.5) < 0.01  # on its own training sample a level is uniform
    assert det.threshold_ == pytest.approx(np.quantile(scores, 0.99))
    assert scores[:N_OUTLIERS].mean() > np.quantile(scores, 0.9)
    parts = [det.decision_function(table.slice(i, 7)) for i in range(0, 140, 7)]
    np.testing.assert_array_equal(np.concatenate(parts), scores[:140])


def test_default_members_are_the_autoencoder_and_the_gan() -> None:
    df = make_table(2000, seed=5)
    table = pa.table({c: df[c].astype("float64") for c in NUMERIC} | {"merchant": df["merchant"]})
    cfg = parse_config({"model": {"kind": "ensemble"}, "train": SMALL["train"]})
    det = make_detector(cfg, NUMERIC, ["merchant"]).fit(table)
    m = det.manifest_()
    assert [s["kind"] for s in m["model"]["members"]] == ["autoencoder", "gan"]
    assert sorted(det.files_) == sorted(m["model"]["onnx_files"]) and len(det.files_) == 2
    levels = _member_levels(det, table)
    scores = det.decision_function(table)
    np.testing.assert_allclose(scores, levels.mean(axis=0), atol=2e-3)
    assert abs(np.mean(scores) - 0.5) < 0.01
    for member in levels:  # both members, and their mean, put the injected outliers in the top tenth
        assert np.median(member[:N_OUTLIERS]) > 0.9
    assert np.median(scores[:N_OUTLIERS]) > np.quantile(scores, 0.9)
    # both members attribute their scores, so the ensemble has reasons: each member's column shares weighted
    # by its level, summing to the score, from the same pass
    explained, parts, expected = det.scorer_.explain_arrays([table.column(c) for c in det.preprocessor.columns])
    np.testing.assert_array_equal(explained, scores)
    assert parts is not None and expected is not None and parts.shape == (len(scores), len(NUMERIC) + 1)
    np.testing.assert_allclose(parts.sum(axis=1), scores, rtol=1e-9)
    assert np.all(np.isfinite(expected[:, : len(NUMERIC)])) and np.all(np.isnan(expected[:, -1]))


def test_an_ensemble_with_a_member_without_reasons_has_none(ensemble) -> None:
    det, table = ensemble  # autoencoder + iforest: the forest does not attribute its score
    scores, parts, expected = det.scorer_.explain_arrays([table.column(c) for c in det.preprocessor.columns])
    np.testing.assert_array_equal(scores, det.decision_function(table))
    assert parts is None and expected is None


def test_rank_transform_is_monotone_with_ties_and_an_open_top() -> None:
    grid = np.quantile(np.r_[np.zeros(500), np.arange(1.0, 501.0)], np.linspace(0, 1, 1001))
    rank = RankTransform(grid.tolist())
    x = np.array([-5.0, 0.0, 1.0, 250.0, 500.0, 501.0, 600.0, 1e6])
    level = rank(x)
    assert np.all(np.diff(level[1:]) > 0)
    assert level[0] == level[1] == pytest.approx(0.25, abs=0.01)  # half the sample tied at 0 shares its mean level
    assert level[4] == pytest.approx(1.0) and 1.0 < level[5] < level[6] < level[7]  # past the max: still ordered
    flat = RankTransform([3.0] * 1001)
    assert flat(np.array([3.0]))[0] == pytest.approx(0.5) and flat(np.array([4.0]))[0] > 0.5


def test_members_config() -> None:
    assert parse_config({"model": {"kind": "ensemble"}}).model.members == ["autoencoder", "gan"]
    with pytest.raises(Exception, match="at least two different"):
        parse_config({"model": {"kind": "ensemble", "members": ["iforest", "iforest"]}})
    with pytest.raises(Exception, match="members"):
        parse_config({"model": {"kind": "ensemble", "members": ["lstm", "iforest"]}})


def _fingerprint(model_dir: Path) -> dict[str, object]:
    """Everything a trained artifact holds except its volatile parts (creation time, training seconds, report)."""
    manifest = json.loads((model_dir / "manifest.json").read_text())
    manifest.pop("created_at")
    manifest["training"].pop("seconds")
    manifest["files"].pop("report.html", None)  # the model page shows the run's timings
    files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in model_dir.iterdir() if p.suffix == ".onnx"}
    return {"manifest": manifest, "onnx_sha256": files}


def test_cli_run_and_train_twice_give_the_same_artifact(tmp_path) -> None:
    """Same config, same input, two fresh processes: identical ONNX bytes, thresholds and manifests."""
    from tests.test_cli import _adspark, _call, run_kind

    out = run_kind(tmp_path, SMALL["model"])
    assert 5 <= out["is_anomaly"].sum() <= 40
    assert out.loc[out["label"] == 1, "anomaly_score"].median() > out["anomaly_score"].quantile(0.75)
    again = _call([*_adspark(), "train", "--config", str(tmp_path / "job.yaml"), "--model-dir",
                   str(tmp_path / "model2")], tmp_path)  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    first, second = _fingerprint(tmp_path / "model"), _fingerprint(tmp_path / "model2")
    assert first["onnx_sha256"] == second["onnx_sha256"] and len(first["onnx_sha256"]) == 2  # type: ignore[arg-type]
    assert first["manifest"] == second["manifest"]
    inspected = _call([*_adspark(), "inspect", str(tmp_path / "model")], tmp_path).stdout
    assert "kind          ensemble" in inspected and "autoencoder + iforest" in inspected
