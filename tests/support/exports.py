"""Exporting an estimator in memory, as `onnxq export sklearn` does before it writes anything."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from onnxq.models.manifest import DEFAULT_TOLERANCE
from onnxq.registry.export import ExportBundle
from onnxq.registry.export_dir import SampleInfo
from onnxq.registry.export_sklearn import export_estimator
from onnxq.registry.parity import ValidationReport, validate_export


def export_in_memory(
    estimator: Any,
    X: np.ndarray,
    features: list[str] | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    **options: Any,
) -> tuple[ExportBundle, ValidationReport]:
    """The export bundle of a fitted estimator on sample rows `X`, and its parity report."""
    rows = np.asarray(X, dtype=np.float64)
    features = features or [f"f{i}" for i in range(rows.shape[1])]
    bundle = export_estimator(
        estimator, rows, features, SampleInfo.of(Path("sample.csv"), rows), **options
    )
    report = validate_export(bundle.onnx_bytes, bundle.record, bundle.expected, None, tolerance)
    return bundle, report
