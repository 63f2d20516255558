"""onnxq's Parquet reader and writer against pyarrow's: the files users send (pyarrow's, and so
pandas' writer, in its encodings and codecs) read back value for value, and the result files onnxq
writes read back in pyarrow with their types."""

from __future__ import annotations

import datetime
import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from onnxq.models.parquet_reader import NotParquet, ParquetColumns
from onnxq.models.parquet_writer import parquet_bytes

ROWS = 20_011
NUMBERS = ["f32", "f64", "i64", "i8", "u32", "flag", "nullable", "repeated"]


@pytest.fixture(scope="module")
def table() -> pa.Table:
    rng = np.random.default_rng(7)
    return pa.table({
        "f32": rng.random(ROWS).astype(np.float32),
        "f64": rng.normal(size=ROWS),
        "i64": rng.integers(-1000, 1000, ROWS),
        "i8": pa.array(rng.integers(-5, 5, ROWS).astype(np.int8)),
        "u32": pa.array(rng.integers(0, 2**32 - 1, ROWS, dtype=np.uint64).astype(np.uint32)),
        "flag": pa.array(rng.random(ROWS) > 0.5),
        "text": pa.array([f"id-{i}" for i in range(ROWS)]),
        "nullable": pa.array([None if i % 7 == 0 else float(i) for i in range(ROWS)]),
        "repeated": np.resize(rng.random(300), ROWS),
        "day": pa.array([datetime.date(2026, 1, 1)] * ROWS),
        "nested": pa.array([[1.0, 2.0]] * ROWS),
    })  # fmt: skip


def parquet(table: pa.Table, **options: object) -> bytes:
    out = io.BytesIO()
    pq.write_table(table, out, **options)
    return out.getvalue()


def read(data: bytes, names: list[str]) -> dict[str, np.ndarray]:
    columns = ParquetColumns(data)
    indexes = [columns.names.index(name) for name in names]
    parts = zip(*(c for _, c in columns.batches(indexes)), strict=False)
    return {name: np.concatenate(part) for name, part in zip(names, parts, strict=True)}


@pytest.mark.parametrize(
    "options",
    [{}, {"compression": "none"}, {"compression": "gzip"}, {"compression": "zstd"},
     {"use_dictionary": False}, {"data_page_version": "2.0"}, {"row_group_size": 3000},
     {"data_page_size": 512}, {"use_dictionary": False, "use_byte_stream_split": ["f32", "f64"]}],
)  # fmt: skip
def test_every_numeric_column_reads_back_as_pyarrow_wrote_it(table: pa.Table, options) -> None:
    got = read(parquet(table, **options), NUMBERS)
    for name in NUMBERS:
        expected = table.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
        np.testing.assert_array_equal(got[name].astype(np.float64), expected, err_msg=name)


def test_columns_that_are_not_numbers_are_named(table: pa.Table) -> None:
    columns = ParquetColumns(parquet(table))
    described = {name: columns.not_number(i) for i, name in enumerate(columns.names)}
    assert described == dict.fromkeys(NUMBERS) | {
        "text": "text", "day": "dates", "nested": "nested values",
    }  # fmt: skip


@pytest.mark.parametrize("cut", ["magic", "footer", "pages"])
def test_a_cut_or_foreign_file_is_not_parquet(table: pa.Table, cut: str) -> None:
    data = parquet(table.select(["f64"]), compression="none")
    broken = {
        "magic": b"PAR2" + data[4:],
        "footer": data[:-30] + data[-8:],  # a footer length past what is left
        "pages": data[:4] + bytes(64) + data[68:],  # the page header zeroed
    }[cut]
    with pytest.raises(NotParquet):
        read(broken, ["f64"])


def test_a_result_file_reads_back_in_pyarrow_with_its_types() -> None:
    columns = {
        "label": np.array([0, 1, 1], np.int64),
        "probability_0": np.array([0.25, 0.5, 0.125], np.float32),
        "small": np.array([1, 2, 3], np.int8),
        "name": np.array(["setosa", "versicolor", "é"]),
    }
    table = pq.read_table(io.BytesIO(parquet_bytes(columns)))
    assert [str(t) for t in table.schema.types] == ["int64", "float", "int8", "string"]
    assert table.to_pydict() == {name: values.tolist() for name, values in columns.items()}
    assert read(parquet_bytes(columns), ["label", "probability_0"])["label"].tolist() == [0, 1, 1]


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    return bytes(out + bytes([value]))


def _bit_packed(values: list[int], width: int) -> bytes:
    """A bit-packed run of `values` (padded to groups of 8), as the spec lays it out."""
    values = values + [0] * (-len(values) % 8)
    bits = sum(v << (i * width) for i, v in enumerate(values))
    return _varint(len(values) // 8 << 1 | 1) + bits.to_bytes(len(values) * width // 8, "little")


def _repeated(value: int, count: int, width: int) -> bytes:
    return _varint(count << 1) + value.to_bytes((width + 7) // 8, "little")


@pytest.mark.parametrize("width", [1, 3, 10, 17, 32])
def test_rle_bit_packed_hybrid_runs_decode_in_order_across_pages(width: int) -> None:
    from onnxq.models.parquet_rle import rle_pages

    rng = np.random.default_rng(width)
    top = 1 << width
    # Page 1: five full 504-value runs (one header), a shorter run, a repeat, two more full ones.
    # Page 2: a repeat, three full runs, and a last run cut by the page's count.
    runs1 = [rng.integers(0, top, n).tolist() for n in (504,) * 5 + (16,)]
    repeat1, more1 = int(rng.integers(0, top)), [rng.integers(0, top, 504).tolist()] * 2
    page1 = b"".join(_bit_packed(r, width) for r in runs1) + _repeated(repeat1, 40, width)
    page1 += b"".join(_bit_packed(r, width) for r in more1)
    values1 = [v for r in runs1 for v in r] + [repeat1] * 40 + [v for r in more1 for v in r]
    repeat2 = int(rng.integers(0, top))
    runs2 = [rng.integers(0, top, 504).tolist() for _ in range(3)] + [
        rng.integers(0, top, 13).tolist()
    ]
    page2 = _repeated(repeat2, 9, width) + b"".join(_bit_packed(r, width) for r in runs2)
    values2 = [repeat2] * 9 + [v for r in runs2 for v in r][:-5]  # the page ends 5 values early

    got = rle_pages([(page1, len(values1)), (memoryview(page2), len(values2))], width)

    assert got.tolist() == values1 + values2


def test_runs_cut_short_are_not_parquet(table: pa.Table, monkeypatch: pytest.MonkeyPatch) -> None:
    from onnxq.models import parquet_reader
    from onnxq.models.parquet_rle import RunsError, rle_values

    with pytest.raises(RunsError, match="end early"):
        rle_values(b"\x03", 10, 8)  # a bit-packed run of one group, its 10 bytes missing
    with pytest.raises(RunsError, match="end early"):
        rle_values(b"\x10", 10, 8)  # a repeated run of 8, its value missing

    def cut(*args: object) -> None:
        raise RunsError("levels or indexes end early")

    monkeypatch.setattr(parquet_reader, "rle_pages", cut)  # as a page cut inside its indexes
    with pytest.raises(NotParquet, match="end early"):
        read(parquet(table.select(["i64"])), ["i64"])


def test_indexes_of_zero_bits_are_all_the_first_entry() -> None:
    from onnxq.models.parquet_rle import rle_pages

    # A one-entry dictionary's indexes take 0 bits: bit-packed runs of no bytes, or repeats.
    page = b"".join(_bit_packed([0] * 504, 0) for _ in range(3)) + _repeated(0, 7, 0)
    page += _bit_packed([0] * 16, 0)
    assert rle_pages([(page, 504 * 3 + 7 + 16)], 0).tolist() == [0] * (504 * 3 + 7 + 16)
