"""From an exported model to its manifest: the one place a Manifest is put together.

`onnxq export <framework>` (export_sklearn.py, export_torch.py) produces an `ExportBundle`: the
ONNX bytes, the record of what they are, and the source model's outputs on the sample. `onnxq
register` and the demo model check its parity and turn it into a version's manifest here.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from onnxq.models.manifest import DType, FeatureSpec, Manifest, TensorSpec
from onnxq.models.tensors import NUMPY_DTYPES
from onnxq.registry.export_dir import ExpectedOutputs, ExportRecord, write_export_dir
from onnxq.registry.parity import ValidationReport, onnx_session

ORT_DTYPES: dict[str, DType] = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(float16)": "float16",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
    "tensor(string)": "string",
}
# A produced array's numpy dtype name -> its manifest dtype (the inverse of NUMPY_DTYPES).
_NUMPY_KINDS: dict[str, DType] = {np.dtype(kind).name: name for name, kind in NUMPY_DTYPES.items()}


@dataclass(frozen=True)
class ExportBundle:
    """What an export produced, before it is written to a directory or registered."""

    onnx_bytes: bytes
    record: ExportRecord
    expected: ExpectedOutputs

    def write(self, directory: Path) -> ExportRecord:
        write_export_dir(directory, self.onnx_bytes, self.record, self.expected)
        return self.record


def numpy_dtype_name(array: np.ndarray) -> DType:
    """A produced array's manifest dtype (strings come out of ONNX Runtime as objects)."""
    return _NUMPY_KINDS.get(str(array.dtype), "string")


def graph_tensors(onnx_bytes: bytes) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """The input and the output tensors the graph declares, as a manifest lists them."""
    session = onnx_session(onnx_bytes)
    return (
        [tensor_spec(node) for node in session.get_inputs()],
        [tensor_spec(node) for node in session.get_outputs()],
    )


def tensor_spec(node: Any) -> TensorSpec:
    shape = [dim if isinstance(dim, int) else None for dim in node.shape]
    return TensorSpec(name=node.name, dtype=ORT_DTYPES.get(node.type, "float32"), shape=shape)


def build_manifest(
    bundle: ExportBundle,
    report: ValidationReport,
    *,
    name: str,
    version: int,
    source: dict[str, Any] | None = None,
) -> Manifest:
    """The manifest of a checked export as version `version` of `name`, made now."""
    record = bundle.record
    inputs, declared = graph_tensors(bundle.onnx_bytes)
    # An output's shape as the model produced it on the sample (a graph may declare [None, 1]
    # for a two-target regressor); outputs the sample run did not see keep their declaration.
    produced = {spec.name: spec for spec in report.outputs}
    outputs = [produced.get(spec.name, spec) for spec in declared]
    nullable = set(record.nullable)
    return Manifest(
        name=name,
        version=version,
        sha256=hashlib.sha256(bundle.onnx_bytes).hexdigest(),
        size_bytes=len(bundle.onnx_bytes),
        created_at=datetime.now(UTC),
        task=record.task,
        features=[FeatureSpec(name=f, nullable=f in nullable) for f in record.features],
        inputs=inputs,
        outputs=outputs,
        label_output=record.label_output,
        probability_output=record.probability_output,
        class_labels=record.class_labels,
        class_names=record.class_names,
        prediction_output=record.prediction_output,
        targets=record.targets,
        parity=report.parity(),
        source=source or {},
    )


def plain(value: Any) -> Any:
    """A numpy scalar (a class label) as the Python value JSON can hold."""
    return value.item() if hasattr(value, "item") else value
