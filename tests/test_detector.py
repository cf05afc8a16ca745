import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from adspark.config import parse_config
from adspark.errors import NotFittedError
from adspark.models import make_detector
from tests.conftest import N_OUTLIERS


def test_contract_scores_threshold_predict(small_detector) -> None:
    det, table = small_detector
    scores = det.decision_function(table)
    assert scores.shape == (table.num_rows,) and scores.dtype == np.float64
    assert np.all(np.isfinite(scores))
    labels = np.r_[np.ones(N_OUTLIERS), np.zeros(table.num_rows - N_OUTLIERS)]
    assert roc_auc_score(labels, scores) > 0.95
    assert det.threshold_ == pytest.approx(np.quantile(scores, 0.99))
    flagged = det.predict(table)
    assert flagged.dtype == bool and flagged.sum() == pytest.approx(0.01 * table.num_rows, abs=2)
    assert flagged[:N_OUTLIERS].mean() > 0.8


def test_scores_do_not_depend_on_batching(small_detector) -> None:
    det, table = small_detector
    full = det.decision_function(table)
    for size in (1, 7, 1000):
        parts = np.concatenate([det.decision_function(table.slice(i, size)) for i in range(0, table.num_rows, size)])
        np.testing.assert_array_equal(parts, full)


def test_manifest_records_everything(small_detector) -> None:
    det, _ = small_detector
    m = det.manifest_()
    assert m["kind"] == "autoencoder"
    assert m["threshold"]["method"] == "contamination" and m["threshold"]["threshold"] == det.threshold_
    assert m["preprocessing"]["feature_names"][:4] == ["amount", "a", "b", "count"]
    assert m["training"]["sample_rows"] == 3000
    assert all(name.endswith(".onnx") for name in det.files_)


def test_not_fitted_detector_raises(small_detector) -> None:
    _, table = small_detector
    det = make_detector(parse_config({}), ["a"], [])
    with pytest.raises(NotFittedError, match="not fitted"):
        det.decision_function(table)


def test_unseen_category_scores_strongly(small_detector) -> None:
    import pyarrow as pa

    det, table = small_detector
    normal = table.slice(100, 50)
    unseen = normal.set_column(4, "merchant", pa.array(["never-seen-before"] * 50))
    base, odd = det.decision_function(normal), det.decision_function(unseen)
    assert np.all(odd > det.threshold_)  # every one is flagged
    assert np.all(odd > base + 10)
