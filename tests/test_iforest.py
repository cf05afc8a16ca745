"""The isolation forest (model.kind: iforest): parity with scikit-learn, export, artifact, CLI end to end."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from adspark.config import parse_config
from adspark.models import make_detector
from tests.conftest import N_OUTLIERS, make_table

NUMERIC = ["amount", "a", "b", "count"]


def _table(n: int = 3000, seed: int = 3) -> pa.Table:
    df = make_table(n, seed=seed)
    return pa.table({c: df[c].astype("float64") for c in NUMERIC} | {"merchant": df["merchant"]})


@pytest.fixture(scope="module")
def forest() -> tuple[object, pa.Table]:
    cfg = parse_config({"model": {"kind": "iforest", "n_estimators": 100}, "train": {"seed": 5}})
    table = _table()
    return make_detector(cfg, NUMERIC, ["merchant"]).fit(table), table


def test_onnx_scores_equal_sklearn_score_samples(forest) -> None:
    from sklearn.ensemble import IsolationForest

    det, table = forest
    features = det.preprocessor.transform([table.column(c) for c in det.preprocessor.columns])
    ours = det.decision_function(table)
    reference = -IsolationForest(n_estimators=100, random_state=5).fit(features).score_samples(features)
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-6)
    assert np.max(np.abs(ours - reference)) < 1e-12  # exact path lengths: only float64 rounding remains
    # unseen rows too, including values exactly on the trees' thresholds and far outside the sample
    tree = det.forest_.estimators_[0].tree_
    probe = np.tile(features[:50], (3, 1))
    split = tree.feature[0]
    probe[:50, det.forest_.estimators_features_[0][split]] = np.float32(tree.threshold[0])
    probe[50:100] *= 40.0
    np.testing.assert_allclose(det.scorer_.score_features(probe), -det.forest_.score_samples(probe), rtol=0, atol=1e-12)


def test_scores_threshold_and_batching(forest) -> None:
    det, table = forest
    scores = det.decision_function(table)
    assert scores.dtype == np.float64 and np.all((scores > 0) & (scores < 1))
    assert det.threshold_ == pytest.approx(np.quantile(scores, 0.99))
    labels = np.r_[np.ones(N_OUTLIERS), np.zeros(table.num_rows - N_OUTLIERS)]
    assert scores[labels == 1].mean() > scores[labels == 0].mean()
    for size in (1, 999):
        parts = [det.decision_function(table.slice(i, size)) for i in range(0, table.num_rows, size)]
        np.testing.assert_array_equal(np.concatenate(parts), scores)


def test_manifest_and_artifact_round_trip(forest, tmp_path) -> None:
    from adspark.artifact import build_manifest, load_artifact, save_artifact
    from adspark.runtime import ForestScorer, build_scorer

    det, table = forest
    m = det.manifest_()
    assert m["kind"] == "iforest" and m["model"]["onnx_files"] == ["iforest.onnx"]
    assert m["model"]["n_estimators"] == 100 and m["model"]["max_samples"] == 256
    assert m["training"]["trees"] == 100 and m["training"]["sample_rows"] == 3000
    schema = [{"name": c, "type": "double", "role": "numeric"} for c in NUMERIC]
    saved = save_artifact(tmp_path / "model", build_manifest(m, det.files_, schema), det.files_)
    loaded = load_artifact(saved.path)
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["iforest.onnx", "manifest.json"]
    scorer = build_scorer(loaded.manifest, loaded.files)
    assert isinstance(scorer, ForestScorer)
    np.testing.assert_array_equal(scorer.score_arrays([table.column(c) for c in det.preprocessor.columns]),
                                  det.decision_function(table))  # fmt: skip


def test_thresholds_round_down_to_float32_and_path_length_matches_sklearn() -> None:
    from sklearn.ensemble._iforest import _average_path_length

    from adspark.models.iforest import average_path_length, float32_at_most

    t = np.array([0.1, 1 / 3, -2.7, 1.0, 5e-8, 1e30])
    down = float32_at_most(t)
    assert down.dtype == np.float32 and np.all(down.astype(np.float64) <= t)
    assert np.all(np.nextafter(down, np.float32(np.inf)).astype(np.float64) > t)  # the largest such float32
    n = np.array([1, 2, 3, 10, 256, 10_000])
    np.testing.assert_allclose(average_path_length(n), _average_path_length(n), rtol=1e-15)


def test_config_keys() -> None:
    m = parse_config({"model": {"kind": "iforest"}}).model
    assert (m.n_estimators, m.max_samples) == (200, "auto")
    with pytest.raises(Exception, match="max_samples"):
        parse_config({"model": {"kind": "iforest", "max_samples": 1}})


def test_cli_run_end_to_end(tmp_path) -> None:
    from tests.test_cli import _adspark, _call, run_kind

    out = run_kind(tmp_path, {"kind": "iforest"})
    assert np.all((out["anomaly_score"] > 0) & (out["anomaly_score"] < 1))
    assert 5 <= out["is_anomaly"].sum() <= 40  # about 1% of 1500
    inspected = _call([*_adspark(), "inspect", str(tmp_path / "model")], tmp_path).stdout
    assert "kind          iforest" in inspected and "iforest.onnx" in inspected
