"""Isolation forest (`model.kind: iforest`): scikit-learn's IsolationForest, scored by onnxruntime.

The forest is fitted on the driver's sample with the same frozen preprocessing
as every other kind (robust scaling, signed-log transforms, one-hot and
missing-value features; unclipped, since a tree only compares). The score is
scikit-learn's ``-score_samples``: ``2 ** (-mean path length / c(max_samples))``,
higher = more anomalous.

Export: one ONNX graph whose only heavy node is a single ai.onnx.ml
TreeEnsembleRegressor holding every tree. Each tree writes the node id of the
leaf a row reaches into its own output column; a Gather maps (tree, leaf) to the
leaf's path length (depth + c(rows in the leaf) - 1) from a float64 table, so the
graph returns the exact float64 path length per tree, and the executor
(adspark.runtime.forest) sums them and normalises in float64 numpy. Thresholds
are stored as the largest float32 not above scikit-learn's float64 threshold:
scikit-learn compares float32 features against float64 thresholds, and with
that rounding a float32 comparison decides every row the same way. The scores
therefore equal scikit-learn's to float64 rounding (tested below 1e-6).

Why not skl2onnx's own IsolationForest converter: it emits about twenty ONNX
nodes per tree (path lengths computed in the input's float32), which for 200
trees took minutes to convert and about 0.5 ms per row to score on one core;
the single tree-ensemble node converts in a second and scores a row in
microseconds. skl2onnx is not needed for this graph; the `onnx` helpers build it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from adspark.models.base import Detector
from adspark.runtime.forest import DEPTHS_OUTPUT, FEATURES_INPUT

ONNX_FILE = "iforest.onnx"
ML_OPSET = 3  # ai.onnx.ml; TreeEnsembleRegressor with float attributes since version 1


def average_path_length(n: np.ndarray) -> np.ndarray:
    """c(n): the mean path length of an unsuccessful search in a binary search tree of n rows."""
    n = np.asarray(n, dtype=np.float64)
    out = np.zeros_like(n)
    out[n == 2] = 1.0
    big = n > 2
    out[big] = 2.0 * (np.log(n[big] - 1.0) + np.euler_gamma) - 2.0 * (n[big] - 1.0) / n[big]
    return out


def float32_at_most(values: np.ndarray) -> np.ndarray:
    """The largest float32 <= each float64 value: `x32 <= t64` iff `x32 <= float32_at_most(t64)`."""
    t32 = values.astype(np.float32)
    over = t32.astype(np.float64) > values
    t32[over] = np.nextafter(t32[over], np.float32(-np.inf))
    return t32


def forest_to_onnx(forest: Any, n_features: int) -> tuple[bytes, int]:
    """(ONNX bytes, node count) of a fitted IsolationForest: per-tree path lengths in float64."""
    from onnx import TensorProto, helper, numpy_helper

    attrs: dict[str, Any] = {k: [] for k in (
        "nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_modes", "nodes_values",
        "nodes_truenodeids", "nodes_falsenodeids", "target_treeids", "target_nodeids", "target_ids", "target_weights",
    )}  # fmt: skip
    offsets: list[int] = []
    table: list[float] = []
    for t, (estimator, features) in enumerate(zip(forest.estimators_, forest.estimators_features_, strict=True)):
        tree = estimator.tree_
        left, right = tree.children_left, tree.children_right
        depth = np.zeros(tree.node_count, dtype=np.float64)  # nodes on the path from the root, root included
        depth[0] = 1.0
        for i in np.flatnonzero(left != -1):  # children always have larger ids than their parent
            depth[left[i]] = depth[right[i]] = depth[i] + 1.0
        leaf = left == -1
        path = np.where(leaf, depth + average_path_length(tree.n_node_samples) - 1.0, 0.0)
        ids = np.arange(tree.node_count)
        attrs["nodes_treeids"] += [t] * tree.node_count
        attrs["nodes_nodeids"] += ids.tolist()
        attrs["nodes_featureids"] += np.where(leaf, 0, np.asarray(features)[np.maximum(tree.feature, 0)]).tolist()
        attrs["nodes_modes"] += np.where(leaf, "LEAF", "BRANCH_LEQ").tolist()
        attrs["nodes_values"] += np.where(leaf, 0.0, float32_at_most(tree.threshold)).tolist()
        attrs["nodes_truenodeids"] += np.where(leaf, 0, left).tolist()
        attrs["nodes_falsenodeids"] += np.where(leaf, 0, right).tolist()
        attrs["target_treeids"] += [t] * int(leaf.sum())
        attrs["target_nodeids"] += ids[leaf].tolist()
        attrs["target_ids"] += [t] * int(leaf.sum())
        attrs["target_weights"] += ids[leaf].astype(float).tolist()  # node ids < 2**24 are exact in float32
        offsets.append(len(table))
        table.extend(path.tolist())
    n_trees = len(forest.estimators_)
    nodes = [
        helper.make_node("TreeEnsembleRegressor", [FEATURES_INPUT], ["leaf"], domain="ai.onnx.ml",
                         n_targets=n_trees, aggregate_function="SUM", post_transform="NONE", **attrs),
        helper.make_node("Cast", ["leaf"], ["leaf_id"], to=TensorProto.INT64),
        helper.make_node("Add", ["leaf_id", "tree_offset"], ["table_index"]),
        helper.make_node("Gather", ["path_table", "table_index"], [DEPTHS_OUTPUT], axis=0),
    ]  # fmt: skip
    initializers = [
        numpy_helper.from_array(np.asarray([offsets], dtype=np.int64), "tree_offset"),
        numpy_helper.from_array(np.asarray(table, dtype=np.float64), "path_table"),
    ]
    graph = helper.make_graph(
        nodes,
        "isolation_forest",
        [helper.make_tensor_value_info(FEATURES_INPUT, TensorProto.FLOAT, [None, n_features])],
        [helper.make_tensor_value_info(DEPTHS_OUTPUT, TensorProto.DOUBLE, [None, n_trees])],
        initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", ML_OPSET)],
        producer_name="adspark",
    )
    model.ir_version = 8  # readable by every onnxruntime since 1.10
    return model.SerializeToString(), len(attrs["nodes_nodeids"])


class IsolationForestDetector(Detector):
    kind = "iforest"

    def _fit_network(self, features: np.ndarray) -> tuple[dict[str, Any], dict[str, bytes]]:
        from sklearn.ensemble import IsolationForest

        m = self.cfg.model
        x = features.astype(np.float32)  # what scikit-learn's trees compare, and what the executors feed
        forest = IsolationForest(
            n_estimators=m.n_estimators, max_samples=m.max_samples, random_state=self.cfg.train.seed
        ).fit(x)
        model_bytes, n_nodes = forest_to_onnx(forest, x.shape[1])
        spec = {
            "onnx_files": [ONNX_FILE],
            "n_estimators": m.n_estimators,
            "max_samples": int(forest.max_samples_),
            "average_path_length": float(average_path_length(np.array([forest.max_samples_]))[0]),
        }
        self.forest_ = forest  # kept on the driver for parity checks; never saved
        depth = math.fsum(e.get_depth() for e in forest.estimators_) / m.n_estimators
        self.training_ = {"trees": m.n_estimators, "nodes": n_nodes, "mean_tree_depth": depth}
        return spec, {ONNX_FILE: model_bytes}
