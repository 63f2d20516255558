"""Export a fitted scikit-learn classifier to ONNX and prove the copy behaves like the original.

Needs the `export` extra (scikit-learn, skl2onnx, onnx); imported only by the CLI.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import onnxruntime as ort

from onnxq.errors import ParityError
from onnxq.models.manifest import DEFAULT_TOLERANCE, FeatureSpec, Manifest, Parity, TensorSpec
from onnxq.registry.export_dir import INPUT_NAME, LABEL_OUTPUT, PROBABILITY_OUTPUT

_ORT_DTYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(int64)": "int64",
    "tensor(bool)": "bool",
    "tensor(string)": "string",
}


@dataclass(frozen=True)
class ExportedModel:
    """ONNX bytes of a classifier plus everything the manifest needs to describe them."""

    onnx_bytes: bytes
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    class_labels: list[Any]
    parity: Parity
    label_output: str = LABEL_OUTPUT
    probability_output: str = PROBABILITY_OUTPUT

    @classmethod
    def of(cls, onnx_bytes: bytes, **fields: Any) -> ExportedModel:
        """Describe `onnx_bytes`, its input and output tensors read from the graph."""
        session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
        inputs, outputs = graph_tensors(session)
        return cls(onnx_bytes=onnx_bytes, inputs=inputs, outputs=outputs, **fields)


def export_sklearn_classifier(
    estimator: Any, X: np.ndarray, tolerance: float = DEFAULT_TOLERANCE
) -> ExportedModel:
    """Convert with probabilities as a tensor (no ZipMap) and float32 input; check parity on X."""
    X32 = np.asarray(X, dtype=np.float32)
    onnx_bytes = sklearn_classifier_to_onnx(estimator, X32.shape[1])
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    labels, probabilities = session.run([LABEL_OUTPUT, PROBABILITY_OUTPUT], {INPUT_NAME: X32})

    # Compare on the float32 rows the service will actually receive.
    expected = estimator.predict_proba(X32)
    max_abs_diff = float(np.max(np.abs(probabilities.astype(np.float64) - expected)))
    label_mismatches = int(np.sum(labels != estimator.predict(X32)))
    if max_abs_diff > tolerance or label_mismatches:
        raise ParityError(
            f"ONNX and scikit-learn disagree: max |Δp| = {max_abs_diff:.3g} "
            f"(tolerance {tolerance:g}), {label_mismatches} label(s) differ on {len(X32)} rows"
        )
    inputs, outputs = graph_tensors(session)
    return ExportedModel(
        onnx_bytes=onnx_bytes,
        inputs=inputs,
        outputs=outputs,
        class_labels=[plain(label) for label in estimator.classes_],
        parity=Parity(
            max_abs_diff=max_abs_diff, tolerance=tolerance, rows=len(X32), compared="probabilities"
        ),
    )


def sklearn_classifier_to_onnx(estimator: Any, width: int) -> bytes:
    """ONNX bytes of a classifier or pipeline: float32 input `input` of `width` columns, outputs
    `label` and `probabilities` (a tensor: ZipMap off)."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    # ZipMap is an option of the classifier itself, also when it is the last step of a pipeline.
    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    onnx_model = to_onnx(
        estimator,
        initial_types=[(INPUT_NAME, FloatTensorType([None, width]))],
        options={id(final): {"zipmap": False}},
        final_types=None,
    )
    for output, name in zip(
        onnx_model.graph.output, (LABEL_OUTPUT, PROBABILITY_OUTPUT), strict=True
    ):
        _rename_output(onnx_model, output.name, name)
    return onnx_model.SerializeToString()  # type: ignore[no-any-return]


def build_manifest(
    exported: ExportedModel,
    *,
    name: str,
    version: int,
    feature_names: list[str],
    class_names: list[str] | None = None,
    source: dict[str, Any] | None = None,
) -> Manifest:
    """The manifest of `exported` as version `version` of `name`, made now: the one place a
    Manifest is put together (`onnxq register`, the demo model)."""
    return Manifest(
        name=name,
        version=version,
        sha256=hashlib.sha256(exported.onnx_bytes).hexdigest(),
        size_bytes=len(exported.onnx_bytes),
        created_at=datetime.now(UTC),
        features=[FeatureSpec(name=feature, dtype="float32") for feature in feature_names],
        inputs=exported.inputs,
        outputs=exported.outputs,
        label_output=exported.label_output,
        probability_output=exported.probability_output,
        class_labels=exported.class_labels,
        class_names=class_names,
        parity=exported.parity,
        source=source or {},
    )


def _rename_output(model: Any, old: str, new: str) -> None:
    if old == new:
        return
    for node in model.graph.node:
        node.output[:] = [new if out == old else out for out in node.output]
    for output in model.graph.output:
        if output.name == old:
            output.name = new


def graph_tensors(session: ort.InferenceSession) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """The input and the output tensors of a loaded graph, as a manifest lists them."""
    return (
        [tensor_spec(node) for node in session.get_inputs()],
        [tensor_spec(node) for node in session.get_outputs()],
    )


def tensor_spec(node: Any) -> TensorSpec:
    shape = [dim if isinstance(dim, int) else None for dim in node.shape]
    return TensorSpec(name=node.name, dtype=_ORT_DTYPES.get(node.type, "float32"), shape=shape)


def plain(value: Any) -> Any:
    """A numpy scalar (a class label) as the Python value JSON can hold."""
    return value.item() if hasattr(value, "item") else value
