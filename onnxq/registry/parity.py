"""Parity: does the exported ONNX model reproduce its source model on the export sample?

The source model's outputs were recorded at export time (expected.npz), on the sample cast to
the model's input types (float32: what the service will receive) and, for tree models, on the
float64 rows as read. So:

- ONNX vs source on float32 input is the parity figure, output by output: for a label output
  the rows whose label differs; for numbers (probabilities, predictions, tensors) the largest
  difference, measured absolutely for values up to 1 and relative to the output's own scale
  beyond: |onnx - source| / max(1, largest |source| of that output column on the sample).
  float32 carries about 7 significant digits whatever the magnitude, so a regression predicting
  20,000 cannot agree to 1e-5 absolutely (and a prediction near 0 that is a difference of large
  terms cannot agree relative to itself), while a probability must agree absolutely. Above the
  tolerance (default 1e-5), or with any label differing, validation fails.
- Source on float64 vs source on float32 rows is a warning for tree models: a feature value just
  beside a split threshold can land on the other side once rounded to float32, so the service
  (float32) and the user's float64 pipeline disagree on those rows. They are listed, not failed:
  the ONNX model is right for what it receives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from onnxq.errors import InvalidInput, InvalidModel, ParityError
from onnxq.models.manifest import DEFAULT_TOLERANCE, MODEL_FILE, Parity, TensorSpec
from onnxq.models.onnx_file import check_onnx_bytes
from onnxq.models.tensors import NUMPY_DTYPES
from onnxq.registry.export_dir import (
    ExpectedOutputs,
    ExportRecord,
    feature_matrix,
    read_csv,
    read_export_dir,
)

LISTED_ROWS = 20  # rows named in a message; the manifest keeps them all


@dataclass(frozen=True)
class ValidationReport:
    """The outcome of one parity check."""

    rows: int
    tolerance: float
    differences: dict[str, float]  # numeric output -> largest scaled difference
    mismatch_rows: dict[str, list[int]]  # label output -> rows whose label differs
    rows_over_tolerance: list[int]
    threshold_flip_rows: list[int]
    outputs: list[TensorSpec] = field(default_factory=list)  # as the ONNX model produced them
    probe_rows: int = 0  # of `rows`, copies of sample rows with nullable features made missing
    nullable: list[str] = field(default_factory=list)

    @property
    def max_abs_diff(self) -> float:
        return max(self.differences.values(), default=0.0)

    @property
    def label_mismatch_rows(self) -> list[int]:
        return sorted({row for rows in self.mismatch_rows.values() for row in rows})

    @property
    def passed(self) -> bool:
        return self.max_abs_diff <= self.tolerance and not self.label_mismatch_rows

    def parity(self) -> Parity:
        per_output = dict(self.differences)
        per_output.update(
            {name: len(rows) / self.rows for name, rows in self.mismatch_rows.items()}
        )
        return Parity(
            max_abs_diff=self.max_abs_diff,
            tolerance=self.tolerance,
            rows=self.rows,
            compared=", ".join([*self.differences, *self.mismatch_rows]),
            per_output=per_output,
            threshold_flip_rows=self.threshold_flip_rows,
        )

    def lines(self) -> list[str]:
        """The report as a person reads it on the terminal."""
        verdict = "PASS" if self.passed else "FAIL"
        probes = (
            f" and {self.probe_rows} copies of them with missing values put in"
            if self.probe_rows
            else ""
        )
        lines = [
            f"{verdict}: ONNX vs source model on {self.rows - self.probe_rows} sample rows"
            f"{probes} (tolerance {self.tolerance:g})"
        ]
        if self.nullable:
            lines.append(f"  nullable (a missing value is sent as NaN): {', '.join(self.nullable)}")
        over = self.rows_over_tolerance
        for name, difference in self.differences.items():
            lines.append(
                f"  {name}: max |diff| = {difference:.3g}" + _rows_note(over, "over the tolerance")
            )
        for name, rows in self.mismatch_rows.items():
            lines.append(f"  {name}: {len(rows)} row(s) differ" + _rows_note(rows, "differ"))
        if self.threshold_flip_rows:
            lines.append(
                f"WARNING: {len(self.threshold_flip_rows)} row(s) give another output when their "
                "float64 values are rounded to float32 (tree split thresholds): "
                f"{_listed(self.threshold_flip_rows)}. The service sees float32, as the ONNX model "
                "does; a float64 pipeline would answer these rows differently."
            )
        return lines

    def raise_if_failed(self) -> None:
        if not self.passed:
            figures = ", ".join(f"{name} {value:.3g}" for name, value in self.differences.items())
            raise ParityError(
                f"ONNX and the source model disagree on the sample: max |diff| {figures} "
                f"(tolerance {self.tolerance:g}), {len(self.label_mismatch_rows)} label(s) "
                f"differ on {self.rows} rows"
                + _rows_note(self.rows_over_tolerance, "over the tolerance")
            )


def _listed(rows: list[int]) -> str:
    shown = ", ".join(str(row) for row in rows[:LISTED_ROWS])
    return shown + (f", ... ({len(rows)} in all)" if len(rows) > LISTED_ROWS else "")


def _rows_note(rows: list[int], what: str) -> str:
    return f" (rows {what}: {_listed(rows)})" if rows else ""


def onnx_session(onnx_bytes: bytes):  # type: ignore[no-untyped-def]
    """A session as the service runs it (one thread: deterministic sums)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    try:
        return ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own untyped errors for a graph it cannot load
        raise InvalidModel(f"ONNX Runtime cannot load the model: {exc}") from exc


def run_onnx(
    onnx_bytes: bytes, record: ExportRecord, inputs: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Every output of the ONNX model on `inputs` (cast to the graph's input types)."""
    session = onnx_session(onnx_bytes)
    graph_inputs = {node.name: node for node in session.get_inputs()}
    outputs = [output.name for output in session.get_outputs()]
    wanted = [name for name in record.compared if name not in outputs]
    if wanted or set(graph_inputs) != set(inputs):
        raise InvalidModel(
            f"the model must take the inputs {sorted(inputs)} and give the outputs "
            f"{record.compared}; it takes {sorted(graph_inputs)} and gives {outputs}"
        )
    from onnxq.registry.export import ORT_DTYPES

    feeds = {
        name: np.asarray(array, dtype=NUMPY_DTYPES[ORT_DTYPES[graph_inputs[name].type]])
        for name, array in inputs.items()
    }
    return dict(zip(outputs, session.run(outputs, feeds), strict=True))


def scaled_difference(actual: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """The largest |actual - expected| of each row, each column scaled by its own magnitude on
    the sample when that is above 1 (see the module doc)."""
    expected = np.asarray(expected, dtype=np.float64).reshape(len(expected), -1)
    actual = np.asarray(actual, dtype=np.float64).reshape(expected.shape)
    scale = np.maximum(1.0, np.nanmax(np.abs(expected), axis=0, initial=0.0))
    difference = np.abs(actual - expected) / scale
    # NaN where both are NaN is agreement; NaN in one only is the largest disagreement.
    both = np.isnan(actual) & np.isnan(expected)
    difference = np.where(both, 0.0, np.where(np.isnan(difference), np.inf, difference))
    return difference.max(axis=1) if difference.size else np.zeros(len(expected))


def compare(
    record: ExportRecord,
    expected: ExpectedOutputs,
    produced: dict[str, np.ndarray],
    tolerance: float,
) -> ValidationReport:
    rows = expected.rows
    differences: dict[str, float] = {}
    mismatches: dict[str, list[int]] = {}
    over = np.zeros(rows, dtype=bool)
    for name in record.compared:
        actual, wanted = produced[name], expected.outputs[name]
        if actual.size != wanted.size:
            raise InvalidModel(
                f"the ONNX output '{name}' has shape {list(actual.shape)}; the source model's "
                f"has {list(wanted.shape)}"
            )
        if name in record.label_outputs:
            mismatches[name] = [int(r) for r in np.flatnonzero(_differ(actual, wanted))]
            continue
        per_row = scaled_difference(actual, wanted)
        differences[name] = float(per_row.max()) if per_row.size else 0.0
        over |= per_row > tolerance
    flips = np.zeros(rows, dtype=bool)
    if record.tree_model:
        for name, at_f64 in expected.outputs_f64.items():
            wanted = expected.outputs[name]
            if name in record.label_outputs:
                flips |= _differ(at_f64, wanted)
            else:
                flips |= scaled_difference(at_f64, wanted) > tolerance
    return ValidationReport(
        rows=rows,
        tolerance=tolerance,
        differences=differences,
        mismatch_rows=mismatches,
        rows_over_tolerance=[int(row) for row in np.flatnonzero(over)],
        # Of the sample's own rows: the probe rows after them are copies of its first rows.
        threshold_flip_rows=[int(row) for row in np.flatnonzero(flips[: record.sample.rows])],
        outputs=[produced_spec(name, array) for name, array in produced.items()],
        probe_rows=record.missing_probe_rows,
        nullable=record.nullable,
    )


def produced_spec(name: str, array: np.ndarray) -> TensorSpec:
    """An output as the model produced it: a graph may declare [None, 1] and give [N, 2]."""
    from onnxq.registry.export import numpy_dtype_name

    return TensorSpec(name=name, dtype=numpy_dtype_name(array), shape=[None, *array.shape[1:]])


def _differ(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    # Labels may be ints in one array and strings in the other (ONNX string labels).
    pairs = zip(np.ravel(left).tolist(), np.ravel(right).tolist(), strict=True)
    return np.asarray([str(a) != str(b) for a, b in pairs], dtype=bool)


def validate_export(
    onnx_bytes: bytes,
    record: ExportRecord,
    expected: ExpectedOutputs,
    sample: Path | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    what: str = "the model",
) -> ValidationReport:
    """Run the ONNX model on the export sample and compare with the source model's outputs.

    `sample`, when given, must hold the rows the source model's outputs were recorded on.
    """
    if tolerance < 0:
        raise InvalidInput("the tolerance must not be negative")
    check_onnx_bytes(onnx_bytes, what)
    if sample is not None:
        if not record.features:
            raise InvalidInput("--sample is for a tabular model; a tensor model's is its npz")
        rows = feature_matrix(read_csv(sample), record.features, str(sample), record.nullable)
        [recorded] = expected.inputs.values()
        recorded = recorded[: record.sample.rows]  # without the missing-value probe rows
        if rows.shape != recorded.shape or not np.array_equal(rows, recorded, equal_nan=True):
            raise InvalidInput(
                f"{sample} is not the sample the source model was run on at export "
                f"({record.sample.file}, {record.sample.rows} rows); export again with this "
                "sample to validate on it"
            )
    produced = run_onnx(onnx_bytes, record, expected.inputs)
    return compare(record, expected, produced, tolerance)


def validate_export_dir(
    directory: Path, sample: Path | None = None, tolerance: float = DEFAULT_TOLERANCE
) -> ValidationReport:
    """`onnxq validate <dir>`: the directory `onnxq export` wrote."""
    record, expected = read_export_dir(directory)
    path = directory / MODEL_FILE
    if not path.is_file():
        raise InvalidModel(f"{path} is missing")
    return validate_export(path.read_bytes(), record, expected, sample, tolerance, str(path))
