"""`onnxq predict-file`: a file of rows in, a file of results out, through a real gateway and
worker."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import nanoarrow as na
import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer

from onnxq.cli.main import main
from tests.integration.conftest import Stack
from tests.integration.test_client import reference
from tests.support.file_bodies import arrow_stream

pytestmark = pytest.mark.integration


@pytest.fixture
def rows() -> np.ndarray:
    return np.resize(load_breast_cancer().data, (1500, 30)).astype(np.float32)


def predict_file(stack: Stack, source: Path, out: Path, monkeypatch, capsys) -> str:
    monkeypatch.setenv("ONNXQ_ENV_FILE", "")
    code = main(["predict-file", "breast-cancer", str(source), "--out", str(out),
                 "--url", stack.base_url])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    return capsys.readouterr().err


def test_a_npy_file_in_a_csv_out(stack: Stack, rows, tmp_path: Path, monkeypatch, capsys) -> None:
    source = tmp_path / "rows.npy"
    np.save(source, rows)
    progress = predict_file(stack, source, tmp_path / "out.csv", monkeypatch, capsys)
    labels, probabilities = reference(stack.model_dir, rows)
    [header, *lines] = list(csv.reader(io.StringIO((tmp_path / "out.csv").read_text())))
    assert header == ["label", "probability_0", "probability_1"]
    assert [int(line[0]) for line in lines] == labels.tolist()
    read = np.array([float(line[1]) for line in lines], dtype=np.float32)
    np.testing.assert_array_equal(read, probabilities[:, 0])
    assert "upload" in progress and "succeeded" in progress and "wrote" in progress


def test_an_arrow_stream_in_arrow_and_json_out(
    stack: Stack, rows, tmp_path: Path, monkeypatch, capsys
) -> None:
    names = load_breast_cancer().feature_names.tolist()
    source = tmp_path / "rows.arrows"
    source.write_bytes(arrow_stream({name: rows[:, i] for i, name in enumerate(names)}, 500))
    labels, _ = reference(stack.model_dir, rows)
    predict_file(stack, source, tmp_path / "out.arrows", monkeypatch, capsys)
    table = na.ArrayStream.from_path(str(tmp_path / "out.arrows")).read_all()
    assert table.child(0).to_pylist() == labels.tolist()
    predict_file(stack, source, tmp_path / "out.json", monkeypatch, capsys)
    written = json.loads((tmp_path / "out.json").read_text())
    assert written["rows"] == len(rows) and written["columns"]["label"] == labels.tolist()


def test_a_bad_file_is_reported_and_fails(stack: Stack, tmp_path: Path, monkeypatch, capsys):
    source = tmp_path / "rows.csv"
    source.write_text("a,b\n1,2\n")
    monkeypatch.setenv("ONNXQ_ENV_FILE", "")
    code = main(["predict-file", "breast-cancer", str(source), "--out", str(tmp_path / "o.csv"),
                 "--url", stack.base_url])  # fmt: skip
    assert code == 2
    assert "422 invalid_input" in capsys.readouterr().err
    assert not (tmp_path / "o.csv").exists()


def test_a_parquet_file_in_parquet_out_past_the_inline_size(
    stack: Stack, tmp_path: Path, monkeypatch, capsys
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = load_breast_cancer()
    rows = np.resize(data.data, (15_000, 30))  # its rows and result kept as blobs, not in Redis
    names = data.feature_names.tolist()
    source = tmp_path / "rows.parquet"  # as pandas writes it: float64, snappy, dictionary pages
    pq.write_table(pa.table({name: rows[:, i] for i, name in reversed(list(enumerate(names)))}),
                   source)  # fmt: skip
    predict_file(stack, source, tmp_path / "out.parquet", monkeypatch, capsys)
    labels, probabilities = reference(stack.model_dir, rows.astype(np.float32))
    out = pq.read_table(tmp_path / "out.parquet")
    assert out.column_names == ["label", "probability_0", "probability_1"]
    assert out.column("label").to_pylist() == labels.tolist()
    np.testing.assert_array_equal(out.column("probability_1").to_numpy(), probabilities[:, 1])
