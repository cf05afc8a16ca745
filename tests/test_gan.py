"""The GAN detector (model.kind: gan): contract, determinism, ONNX parity, divergence, artifact, pipeline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from sklearn.metrics import roc_auc_score

from adspark.artifact import build_manifest, describe, load_artifact, save_artifact
from adspark.config import parse_config
from adspark.errors import ConfigError, TrainingError
from adspark.models import make_detector
from adspark.runtime import GanScorer, build_scorer
from tests.conftest import N_OUTLIERS, job_dict, make_table

NUMERIC = ["amount", "a", "b", "count"]
TRAIN = {"epochs": 8, "seed": 0, "patience": 3, "batch_size": 32, "min_steps": 0}  # short, for speed


def _table(df) -> pa.Table:  # type: ignore[no-untyped-def]
    return pa.table({c: df[c].astype("float64") for c in NUMERIC} | {"merchant": df["merchant"]})


@pytest.fixture(scope="module")
def gan() -> tuple[object, pa.Table]:
    table = _table(make_table(3000, seed=3))
    cfg = parse_config({"model": {"kind": "gan"}, "train": TRAIN})
    return make_detector(cfg, NUMERIC, ["merchant"]).fit(table), table


def _features(det, table: pa.Table) -> np.ndarray:  # type: ignore[no-untyped-def]
    return det.preprocessor.transform([table.column(c) for c in det.preprocessor.columns])


def test_contract_and_injected_outliers(gan) -> None:
    det, table = gan
    scores = det.decision_function(table)
    assert scores.shape == (table.num_rows,) and scores.dtype == np.float64 and np.all(np.isfinite(scores))
    labels = np.r_[np.ones(N_OUTLIERS), np.zeros(table.num_rows - N_OUTLIERS)]
    assert roc_auc_score(labels, scores) > 0.9
    assert det.threshold_ == pytest.approx(np.quantile(scores, 0.99))
    assert det.predict(table)[:N_OUTLIERS].mean() > 0.5
    m = det.manifest_()
    assert m["kind"] == "gan" and list(det.files_) == ["gan_scoring.onnx"]
    assert set(m["model"]["normalisation"]) == {"rec_center", "rec_spread", "fm_center", "fm_spread"}
    assert m["training"]["best_epoch"] >= 1 and m["training"]["trimmed_rows"] > 0


def test_scoring_is_deterministic_and_batch_invariant(gan) -> None:
    det, table = gan
    full = det.decision_function(table)
    np.testing.assert_array_equal(det.decision_function(table), full)
    for size in (1, 7, 1000):
        parts = np.concatenate([det.decision_function(table.slice(i, size)) for i in range(0, table.num_rows, size)])
        np.testing.assert_array_equal(parts, full)


def test_normalisation_is_frozen_not_per_batch(gan) -> None:
    det, table = gan
    one_row = det.decision_function(table.slice(5, 1))
    assert one_row[0] == det.decision_function(table)[5]  # a lone row is not rescaled by its own batch
    norm = det.manifest_()["model"]["normalisation"]
    rec, fm = det.scorer_.components(_features(det, table))
    assert norm["rec_center"] == pytest.approx(np.median(rec)) and norm["fm_center"] == pytest.approx(np.median(fm))


def test_unseen_category_scores_high(gan) -> None:
    det, table = gan
    row = table.slice(10, 1).to_pydict() | {"merchant": ["casino"]}
    assert det.decision_function(pa.table(row))[0] > np.quantile(det.decision_function(table), 0.99)


def test_onnx_equals_keras(gan) -> None:
    det, table = gan
    x = det.preprocessor.network_input(_features(det, table))
    keras_out = det.networks_.scoring.predict(x, verbose=0)
    session = det.scorer_.session
    onnx_out = session.run(None, {session.get_inputs()[0].name: x})[0]
    assert onnx_out.shape == keras_out.shape
    np.testing.assert_allclose(onnx_out, keras_out, atol=1e-4, rtol=0)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "elu", "tanh"])
def test_exported_graph_is_batch_invariant(activation: str) -> None:
    """Every activation the config allows: the raw ONNX output of a row does not depend on its batch."""
    from adspark.models.gan import build_networks
    from adspark.models.training import export_onnx
    from adspark.runtime import onnx_session as _session

    nets = build_networks(23, [16, 4], 4, [16, 8], activation)
    session = _session(export_onnx(nets.scoring, 23), "t.onnx")
    x = np.random.default_rng(0).normal(size=(1500, 23)).astype(np.float32)
    run = lambda rows: session.run(None, {session.get_inputs()[0].name: rows})[0]  # noqa: E731
    full = run(x)
    for size in (1, 7, 1000):
        np.testing.assert_array_equal(np.concatenate([run(x[i : i + size]) for i in range(0, len(x), size)]), full)


@pytest.mark.parametrize(("n_features", "rows"), [(1, 400), (700, 300)])
def test_one_and_many_features(n_features: int, rows: int) -> None:
    rng = np.random.default_rng(1)
    cols = [f"c{i}" for i in range(n_features)]
    table = pa.table({c: rng.normal(size=rows) for c in cols})
    cfg = parse_config({"model": {"kind": "gan"}, "train": {"epochs": 2, "seed": 0, "batch_size": 64, "min_steps": 0}})
    det = make_detector(cfg, cols, []).fit(table)
    scores = det.decision_function(table)
    assert scores.shape == (rows,) and np.all(np.isfinite(scores))
    assert det.training_["n_features"] == 2 * n_features  # each value and its missing indicator


def test_divergence_raises_training_error() -> None:
    table = _table(make_table(600, seed=2))
    train = {"epochs": 3, "learning_rate": 1e30, "batch_size": 64, "min_steps": 0}
    cfg = parse_config({"model": {"kind": "gan"}, "train": train})
    det = make_detector(cfg, NUMERIC, ["merchant"])
    with pytest.raises(TrainingError, match=r"diverged \(NaN or inf\).*no artifact"):
        det.fit(table)
    assert det.scorer_ is None and det.files_ == {}


def test_artifact_round_trip_scores_identically(gan, tmp_path: Path) -> None:
    det, table = gan
    schema = [{"name": c, "type": "double", "role": "numeric"} for c in NUMERIC]
    save_artifact(tmp_path / "model", build_manifest(det.manifest_(), det.files_, schema), det.files_)
    art = load_artifact(tmp_path / "model")
    assert art.kind == "gan" and art.threshold == det.threshold_
    assert art.manifest["model"]["adversarial_weight"] == pytest.approx(0.03)  # the default it was trained with
    scorer = build_scorer(art.manifest, art.files)
    assert isinstance(scorer, GanScorer)
    cols = [table.column(c) for c in det.preprocessor.columns]
    np.testing.assert_array_equal(scorer.score_arrays(cols), det.decision_function(table))
    assert "gan" in describe(art)


def test_gan_config_is_validated() -> None:
    cfg = parse_config({"model": {"kind": "gan", "latent": 3, "score_alpha": 1.0}})
    assert cfg.model.latent == 3 and cfg.model.adversarial_weight == pytest.approx(0.03)
    for bad, needle in [
        ({"kind": "gan", "latnet": 3}, "unknown key 'model.latnet'"),
        ({"kind": "gan", "score_alpha": 1.5}, "model.score_alpha"),
        ({"kind": "gan", "disc_hidden": []}, "model.disc_hidden"),
        ({"kind": "gan", "ensemble": 2}, "ensemble must be 1"),
    ]:
        with pytest.raises(ConfigError, match=needle):
            parse_config({"model": bad})


def test_pipeline_run_end_to_end(spark, dataset, tmp_path: Path) -> None:
    from adspark import pipeline

    df, path = dataset
    cfg = parse_config(job_dict(tmp_path, path, model={"kind": "gan"}))
    report = pipeline.run(spark, cfg)  # type: ignore[arg-type]
    assert report.output_rows == len(df) and load_artifact(str(cfg.model_dir)).kind == "gan"
    out = spark.read.parquet(cfg.output.path).toPandas()  # type: ignore[attr-defined]
    assert sorted(out["txn_id"]) == list(range(len(df)))
    assert np.all(np.isfinite(out["anomaly_score"]))
    out = out.sort_values("txn_id").reset_index(drop=True)
    assert out.loc[: N_OUTLIERS - 1, "anomaly_score"].median() > np.quantile(out["anomaly_score"], 0.9)
