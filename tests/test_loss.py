"""model.loss: the training loss of the autoencoder and the GAN on each row's mean squared error."""

import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from adspark.config import parse_config
from adspark.errors import ConfigError
from adspark.models import make_detector
from adspark.models.losses import WELSCH_SCALE, batch_loss, welsch
from tests.test_cli import run_kind


def test_welsch_is_the_error_near_zero_and_flattens_beyond_the_median() -> None:
    import tensorflow as tf

    errors = tf.constant([0.5, 1.0, 1.0, 3.0, 30.0])
    c = WELSCH_SCALE * 1.0  # the batch's median row error
    with tf.GradientTape() as tape:
        tape.watch(errors)
        loss = welsch(errors)
        total = tf.reduce_sum(loss)
    pull = tape.gradient(total, errors).numpy()
    expected = [c * (1 - math.exp(-e / c)) for e in (0.5, 1.0, 1.0, 3.0, 30.0)]
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-6)
    # a row's pull on the weights: exp(-e / c) of the squared error's; the scale itself is not differentiated
    np.testing.assert_allclose(pull, np.exp(-errors.numpy() / c), rtol=1e-6)
    assert pull[3] < 0.05 and pull[4] < 1e-12


def test_batch_loss_is_the_plain_mean_for_mse_and_the_mean_welsch_loss_of_the_rows() -> None:
    import tensorflow as tf

    squared = tf.constant(np.random.default_rng(0).lognormal(sigma=2.0, size=(100, 9)), dtype=tf.float32)
    # "mse" is the one reduction over every cell the GAN has always trained on, bit for bit: on these
    # cells the mean of the row means differs from it in float32, so another reduction would fail here
    assert tf.reduce_mean(tf.reduce_mean(squared, axis=1)).numpy() != tf.reduce_mean(squared).numpy()
    assert batch_loss("mse", squared).numpy() == tf.reduce_mean(squared).numpy()
    rows = tf.reduce_mean(squared, axis=1)
    expected = float(np.mean(welsch(rows).numpy()))
    assert float(batch_loss("welsch", squared).numpy()) == pytest.approx(expected, rel=1e-6)
    assert expected < float(tf.reduce_mean(rows).numpy())  # the worst rows count for less


def test_loss_config() -> None:
    assert parse_config({}).model.loss is None  # the kind's default:
    assert parse_config({}).model.row_loss() == "mse+welsch"
    assert parse_config({"model": {"kind": "gan"}}).model.row_loss() == "mse"
    assert parse_config({"model": {"kind": "ensemble"}}).model.row_loss() == "mse"  # its members train one each
    assert parse_config({"model": {"kind": "gan", "loss": "mse+welsch"}}).model.row_loss() == "mse+welsch"
    assert parse_config({"model": {"loss": "welsch"}}).model.loss == "welsch"
    with pytest.raises(ConfigError, match="loss"):
        parse_config({"model": {"loss": "huber"}})


@pytest.mark.parametrize(("kind", "measured"), [("autoencoder", "0.84 against 0.65"), ("gan", "0.95 against 0.80")])
def test_welsch_learns_a_contaminated_third_less(kind: str, measured: str) -> None:
    """A third of the rows on a three-dimensional subspace of their own, the rest on another: a four-unit
    code cannot hold both. Under the squared error the network spends its code on both and reconstructs
    the third nearly as well as the rest; under `welsch` the third pulls less, stays worse reconstructed,
    and stands clearly above the other rows (ROC-AUC of the third, `measured`)."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    n, d, k = 900, 8, 3
    normal_loadings, other_loadings = rng.normal(size=(k, d)), rng.normal(size=(k, d))
    third = np.arange(n) % 3 == 0
    z = rng.normal(size=(n, k))
    x = np.where(third[:, None], z @ other_loadings, z @ normal_loadings) + 0.1 * rng.normal(size=(n, d))
    columns = [f"c{i}" for i in range(d)]
    table = pa.table({c: x[:, i] for i, c in enumerate(columns)})
    auc = {}
    for loss in ("mse", "welsch"):
        cfg = parse_config({"model": {"kind": kind, "loss": loss},
                            "train": {"epochs": 40, "seed": 0, "batch_size": 64}})
        det = make_detector(cfg, columns, []).fit(table)
        assert det.manifest_()["model"]["loss"] == loss
        auc[loss] = roc_auc_score(third, det.decision_function(table))
    assert auc["welsch"] > auc["mse"] + 0.1, (auc, measured)


def test_welsch_training_is_reproducible() -> None:
    """The batch median is a sort: the same config and rows train the same weights, so the same scores.
    (Byte-identical ONNX files are a property of two fresh processes: tests/test_ensemble.py.)"""
    rng = np.random.default_rng(3)
    table = pa.table({"a": rng.normal(size=400), "b": rng.lognormal(size=400)})
    cfg = parse_config({"model": {"loss": "welsch"}, "train": {"epochs": 5, "seed": 7, "batch_size": 64}})
    first, second = (make_detector(cfg, ["a", "b"], []).fit(table) for _ in range(2))
    np.testing.assert_array_equal(first.decision_function(table), second.decision_function(table))


def test_cli_run_with_the_welsch_loss(tmp_path: Path) -> None:
    out = run_kind(tmp_path, {"kind": "autoencoder", "loss": "welsch"})
    assert np.all(np.isfinite(out["anomaly_score"]))
    assert out.loc[out["label"] == 1, "anomaly_score"].median() > out["anomaly_score"].quantile(0.9)
    manifest = json.loads((tmp_path / "model" / "manifest.json").read_text())
    assert manifest["model"]["loss"] == "welsch"


@pytest.mark.parametrize(("kind", "combine"), [("autoencoder", "geometric"), ("gan", "rank")])
def test_mse_plus_welsch_combines_the_two_networks(kind: str, combine: str) -> None:
    """`mse+welsch` (the autoencoder's default) trains the very networks `mse` and `welsch` train alone, on
    the same seed and preprocessing. The autoencoder scores a row by the geometric mean of their errors;
    the GAN, whose scores are centred, by the mean of their quantile levels in their own training scores."""
    from adspark.runtime import build_scorer
    from adspark.runtime.ensemble import RankTransform

    rng = np.random.default_rng(5)
    table = pa.table({"a": rng.normal(size=600), "b": rng.lognormal(size=600), "c": rng.normal(size=600)})
    train = {"epochs": 4, "seed": 2, "batch_size": 64}
    fitted = {loss: make_detector(parse_config({"model": {"kind": kind, "loss": loss}, "train": train}),
                                  ["a", "b", "c"], []).fit(table)
              for loss in ("mse", "welsch", "mse+welsch")}  # fmt: skip
    pair = fitted["mse+welsch"]
    spec = pair.manifest_()["model"]
    assert spec["loss"] == "mse+welsch" and spec["combine"] == combine
    assert [n["model"]["loss"] for n in spec["members"]] == ["mse", "welsch"]
    raws = []
    for loss, network in zip(("mse", "welsch"), spec["members"], strict=True):
        alone = fitted[loss]
        assert network["model"]["onnx_files"] == [f"{loss}_{name}" for name in sorted(alone.files_)]
        raw = alone.decision_function(table)
        core = {"kind": kind, "preprocessing": pair.preprocessor.to_state(), "model": network["model"]}
        np.testing.assert_array_equal(build_scorer(core, pair.files_).score_arrays(
            [table.column(c) for c in ("a", "b", "c")]), raw)  # fmt: skip
        if combine == "rank":
            np.testing.assert_array_equal(network["quantiles"], np.quantile(raw, np.linspace(0, 1, 1001)))
            raw = RankTransform(network["quantiles"])(raw)
        else:
            assert "quantiles" not in network
        raws.append(raw)
    expected = np.sqrt(raws[0] * raws[1]) if combine == "geometric" else np.mean(raws, axis=0)
    np.testing.assert_allclose(pair.decision_function(table), expected, rtol=1e-12)
