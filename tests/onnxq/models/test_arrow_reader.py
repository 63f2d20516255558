"""onnxq's in-place Arrow stream reader against pyarrow's writer: batches, nulls, booleans and
columns it skips read back value for value; dictionary-encoded and compressed streams go through
nanoarrow's reader; a cut stream is refused."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pytest

from onnxq.models.arrow_reader import ArrowColumns, NotArrow

NUMBERS = ["f32", "i16", "flag", "nullable"]


@pytest.fixture(scope="module")
def table() -> pa.Table:
    rng = np.random.default_rng(3)
    rows = 5003
    return pa.table({
        "text": pa.array([f"row {i}" for i in range(rows)]),
        "f32": rng.random(rows).astype(np.float32),
        "listed": pa.array([[1, 2]] * rows),
        "i16": pa.array(rng.integers(-9, 9, rows).astype(np.int16)),
        "flag": pa.array(rng.random(rows) > 0.3),
        "nullable": pa.array([None if i % 5 == 0 else i * 0.5 for i in range(rows)]),
    })  # fmt: skip


def stream(table: pa.Table, batch_rows: int = 1000, **options: object) -> bytes:
    out = io.BytesIO()
    with pa.ipc.new_stream(out, table.schema, options=pa.ipc.IpcWriteOptions(**options)) as writer:
        writer.write_table(table, max_chunksize=batch_rows)
    return out.getvalue()


def read(data: bytes) -> tuple[ArrowColumns, dict[str, np.ndarray]]:
    columns = ArrowColumns(data)
    indexes = [columns.names.index(name) for name in NUMBERS]
    parts = zip(*(c for _, c in columns.batches(indexes)), strict=False)
    return columns, {name: np.concatenate(p) for name, p in zip(NUMBERS, parts, strict=True)}


def expected(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).to_numpy(zero_copy_only=False).astype(np.float64)


@pytest.mark.parametrize("options", [{}, {"compression": "zstd"}, {"compression": "lz4"}])
def test_pyarrows_batches_read_back_value_for_value(table: pa.Table, options) -> None:
    columns, got = read(stream(table, **options))
    assert columns._mapped is not bool(options)  # in place unless compressed
    for name in NUMBERS:
        np.testing.assert_array_equal(got[name].astype(np.float64), expected(table, name))
    assert columns.not_number(columns.names.index("text")) == "string"
    assert columns.not_number(columns.names.index("listed")) == "list"


def test_a_dictionary_encoded_column_goes_through_nanoarrow(table: pa.Table) -> None:
    encoded = table.append_column("kind", pa.array(["a", "b"] * 2501 + ["a"]).dictionary_encode())
    columns, got = read(stream(encoded))
    assert not columns._mapped
    np.testing.assert_array_equal(got["f32"].astype(np.float64), expected(table, "f32"))


def test_a_cut_stream_is_refused(table: pa.Table) -> None:
    data = stream(table)
    for cut in (len(data) // 2, 100, 6):
        with pytest.raises(NotArrow):
            read(data[:cut])
