"""Parity: does the exported ONNX model reproduce its source model on the export sample?

The source model's outputs were recorded at export time (expected.npz), on the sample rows cast to
float32 (what the service will receive) and, for tree models, on the float64 rows as read. So:

- ONNX vs source on float32 rows is the parity figure: max |difference| of the probabilities and
  the rows whose label differs. Above the tolerance (default 1e-5), validation fails.
- Source on float64 vs source on float32 rows is a warning for tree models: a feature value just
  beside a split threshold can land on the other side once rounded to float32, so the service
  (float32) and the user's float64 pipeline disagree on those rows. They are listed, not failed:
  the ONNX model is right for what it receives.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from onnxq.errors import InvalidInput, InvalidModel, ParityError
from onnxq.models.manifest import DEFAULT_TOLERANCE, MODEL_FILE, Parity
from onnxq.models.onnx_file import check_onnx_bytes
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
    probability_max_abs_diff: float
    label_mismatch_rows: list[int]
    rows_over_tolerance: list[int]
    threshold_flip_rows: list[int]
    probability_output: str
    label_output: str

    @property
    def passed(self) -> bool:
        return self.probability_max_abs_diff <= self.tolerance and not self.label_mismatch_rows

    def parity(self) -> Parity:
        return Parity(
            max_abs_diff=self.probability_max_abs_diff,
            tolerance=self.tolerance,
            rows=self.rows,
            compared=f"{self.probability_output}, {self.label_output}",
            per_output={
                self.probability_output: self.probability_max_abs_diff,
                self.label_output: len(self.label_mismatch_rows) / self.rows,
            },
            threshold_flip_rows=self.threshold_flip_rows,
        )

    def lines(self) -> list[str]:
        """The report as a person reads it on the terminal."""
        verdict = "PASS" if self.passed else "FAIL"
        lines = [
            f"{verdict}: ONNX vs source model on {self.rows} sample rows "
            f"(tolerance {self.tolerance:g})",
            f"  {self.probability_output}: max |diff| = {self.probability_max_abs_diff:.3g}"
            + _rows_note(self.rows_over_tolerance, "over the tolerance"),
            f"  {self.label_output}: {len(self.label_mismatch_rows)} row(s) differ"
            + _rows_note(self.label_mismatch_rows, "differ"),
        ]
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
            raise ParityError(
                f"ONNX and the source model disagree on the sample: max |diff| of "
                f"{self.probability_output} = {self.probability_max_abs_diff:.3g} (tolerance "
                f"{self.tolerance:g}), {len(self.label_mismatch_rows)} label(s) differ on "
                f"{self.rows} rows" + _rows_note(self.rows_over_tolerance, "over the tolerance")
            )


def _listed(rows: list[int]) -> str:
    shown = ", ".join(str(row) for row in rows[:LISTED_ROWS])
    return shown + (f", ... ({len(rows)} in all)" if len(rows) > LISTED_ROWS else "")


def _rows_note(rows: list[int], what: str) -> str:
    return f" (rows {what}: {_listed(rows)})" if rows else ""


def run_onnx(onnx_bytes: bytes, record: ExportRecord, rows: np.ndarray) -> tuple[np.ndarray, ...]:
    """Labels and probabilities of the ONNX model on float32 `rows`, on one thread."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # deterministic sums, as the service runs
    try:
        session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own untyped errors for a graph it cannot load
        raise InvalidModel(f"ONNX Runtime cannot load the model: {exc}") from exc
    inputs = session.get_inputs()
    outputs = {output.name for output in session.get_outputs()}
    wanted = [record.label_output, record.probability_output]
    if len(inputs) != 1 or not set(wanted) <= outputs:
        raise InvalidModel(
            f"the model must take one input and give outputs {wanted}; it takes "
            f"{[i.name for i in inputs]} and gives {sorted(outputs)}"
        )
    labels, probabilities = session.run(wanted, {inputs[0].name: rows.astype(np.float32)})
    return labels, probabilities


def compare(
    record: ExportRecord,
    expected: ExpectedOutputs,
    labels: np.ndarray,
    probabilities: np.ndarray,
    tolerance: float,
) -> ValidationReport:
    if probabilities.shape != expected.probabilities.shape:
        raise InvalidModel(
            f"the ONNX {record.probability_output} have shape {probabilities.shape}; "
            f"the source model's have {expected.probabilities.shape}"
        )
    difference = np.abs(probabilities.astype(np.float64) - expected.probabilities)
    per_row = difference.max(axis=1) if difference.ndim > 1 else difference
    flips: list[int] = []
    if record.tree_model and expected.probabilities_f64 is not None:
        flipped = np.abs(expected.probabilities_f64 - expected.probabilities)
        flipped_rows = flipped.max(axis=1) if flipped.ndim > 1 else flipped
        changed = flipped_rows > tolerance
        if expected.labels_f64 is not None:
            changed |= _differ(expected.labels_f64, expected.labels)
        flips = [int(row) for row in np.flatnonzero(changed)]
    return ValidationReport(
        rows=len(expected.rows),
        tolerance=tolerance,
        probability_max_abs_diff=float(per_row.max()) if per_row.size else 0.0,
        label_mismatch_rows=[int(r) for r in np.flatnonzero(_differ(labels, expected.labels))],
        rows_over_tolerance=[int(row) for row in np.flatnonzero(per_row > tolerance)],
        threshold_flip_rows=flips,
        probability_output=record.probability_output,
        label_output=record.label_output,
    )


def _differ(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    # Labels may be ints in one array and strings in the other (ONNX string labels).
    pairs = zip(left.tolist(), right.tolist(), strict=True)
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
        rows = feature_matrix(read_csv(sample), record.features, str(sample))
        if rows.shape != expected.rows.shape or not np.array_equal(rows, expected.rows):
            raise InvalidInput(
                f"{sample} is not the sample the source model was run on at export "
                f"({record.sample.file}, {record.sample.rows} rows); export again with this "
                "sample to validate on it"
            )
    labels, probabilities = run_onnx(onnx_bytes, record, expected.rows)
    return compare(record, expected, labels, probabilities, tolerance)


def validate_export_dir(
    directory: Path, sample: Path | None = None, tolerance: float = DEFAULT_TOLERANCE
) -> ValidationReport:
    """`onnxq validate <dir>`: the directory `onnxq export` wrote."""
    record, expected = read_export_dir(directory)
    path = directory / MODEL_FILE
    if not path.is_file():
        raise InvalidModel(f"{path} is missing")
    return validate_export(path.read_bytes(), record, expected, sample, tolerance, str(path))
