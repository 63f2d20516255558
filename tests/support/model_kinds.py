"""Models of every kind in a repository, built in memory for the gateway and worker tests.

The scikit-learn ones go through the same export and manifest code as `onnxq export` and
`onnxq register`; the tensor model is a small ONNX graph written with onnx.helper (two inputs of
two dtypes, two outputs), so that these tests need no torch.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper
from sklearn.datasets import load_iris, make_regression
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.svm import LinearSVC

from onnxq.models.manifest import Manifest, Parity, TensorSpec
from onnxq.models.repository import ModelRepository
from onnxq.registry.export import build_manifest
from tests.support.exports import export_in_memory

REGRESSOR, IRIS, SVC, NULLABLE, TENSOR = "prices", "iris", "svc", "nullable", "tensor"
IMAGE_SHAPE, IDS_WIDTH = (1, 4, 4), 3


def add_exported(repository: ModelRepository, name: str, estimator: Any, X: np.ndarray, **options):
    bundle, report = export_in_memory(estimator, X, **options)
    report.raise_if_failed()
    manifest = build_manifest(bundle, report, name=name, version=1)
    repository.add_version(manifest, bundle.onnx_bytes)
    return estimator


def tensor_model() -> bytes:
    """image [N, 1, 4, 4] float32 and ids [N, 3] int64 -> logits [N, 3], total [N, 1]."""
    weights = np.arange(48, dtype=np.float32).reshape(16, 3) / 100
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["image"], ["flat"], axis=1),
            helper.make_node("MatMul", ["flat", "weights"], ["logits"]),
            helper.make_node("Cast", ["ids"], ["ids_float"], to=TensorProto.FLOAT),
            helper.make_node("ReduceSum", ["ids_float", "axes"], ["total"], keepdims=1),
        ],
        "tensor-test",
        [
            helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", *IMAGE_SHAPE]),
            helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", IDS_WIDTH]),
        ],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3]),
            helper.make_tensor_value_info("total", TensorProto.FLOAT, ["batch", 1]),
        ],
        initializer=[
            helper.make_tensor("weights", TensorProto.FLOAT, [16, 3], weights.ravel()),
            helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def add_tensor_model(repository: ModelRepository) -> None:
    onnx_bytes = tensor_model()
    manifest = Manifest(
        name=TENSOR,
        version=1,
        sha256=hashlib.sha256(onnx_bytes).hexdigest(),
        size_bytes=len(onnx_bytes),
        created_at=datetime.now(UTC),
        task="tensor",
        inputs=[
            TensorSpec(name="image", dtype="float32", shape=[None, *IMAGE_SHAPE]),
            TensorSpec(name="ids", dtype="int64", shape=[None, IDS_WIDTH]),
        ],
        outputs=[
            TensorSpec(name="logits", dtype="float32", shape=[None, 3]),
            TensorSpec(name="total", dtype="float32", shape=[None, 1]),
        ],
        parity=Parity(max_abs_diff=0.0, tolerance=1e-5, rows=1, compared="logits, total"),
    )
    repository.add_version(manifest, onnx_bytes)


def build_model_kinds(repository: ModelRepository) -> dict[str, Any]:
    """Add one model of each kind; return the source estimators by model name."""
    X, Y = make_regression(200, 4, n_targets=2, random_state=0)
    iris = load_iris()
    Xi, labels = iris.data, iris.target_names[iris.target]
    Xn = X.copy()
    Xn[::4, 1] = np.nan
    return {
        REGRESSOR: add_exported(repository, REGRESSOR, Ridge().fit(X, Y), X, targets=["a", "b"]),
        IRIS: add_exported(
            repository, IRIS, LogisticRegression(max_iter=1000).fit(Xi, labels), Xi, nullable=[]
        ),
        SVC: add_exported(repository, SVC, LinearSVC().fit(Xi, labels), Xi),
        NULLABLE: add_exported(
            repository,
            NULLABLE,
            HistGradientBoostingRegressor(max_iter=20).fit(Xn, Y[:, 0]),
            Xn,
            nullable=["f1", "f2"],
        ),
        TENSOR: add_tensor_model(repository),
    }


def tensor_rows(count: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    return [
        {
            "image": rng.normal(size=IMAGE_SHAPE).round(3).tolist(),
            "ids": rng.integers(0, 100, IDS_WIDTH).tolist(),
        }
        for _ in range(count)
    ]
