"""Only ONNX bytes pass: the check reads the file's contents, never its name."""

from __future__ import annotations

import pickle
import zipfile
from io import BytesIO
from pathlib import Path

import pytest

from onnxq.errors import InvalidModel
from onnxq.models.manifest import MODEL_FILE
from onnxq.models.onnx_file import check_onnx_bytes


@pytest.fixture(scope="module")
def onnx_bytes(demo_model_dir: Path) -> bytes:
    return (demo_model_dir / "breast-cancer" / "1" / MODEL_FILE).read_bytes()


def test_a_real_onnx_model_passes(onnx_bytes: bytes) -> None:
    check_onnx_bytes(onnx_bytes)


@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_a_pickle_is_refused_and_named_as_one_whatever_its_protocol(protocol: int) -> None:
    data = pickle.dumps({"weights": [1.0, 2.0]}, protocol=protocol)

    with pytest.raises(InvalidModel, match="not an ONNX model"):
        check_onnx_bytes(data, "model.onnx")


def test_a_zip_checkpoint_is_refused() -> None:
    buffer = BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", b"\x80\x04N.")

    with pytest.raises(InvalidModel, match="zip archive"):
        check_onnx_bytes(buffer.getvalue())


@pytest.mark.parametrize(
    "data",
    [b"", b"hello world, not a model", b"\x08\x07", b"\xff" * 64, b"\x08\x07\x3a\xff\x01"],
    ids=["empty", "text", "ir-version-only", "garbage", "truncated-graph"],
)
def test_bytes_that_are_not_a_model_proto_are_refused(data: bytes) -> None:
    with pytest.raises(InvalidModel, match="not an ONNX model"):
        check_onnx_bytes(data)


def test_a_truncated_onnx_model_is_refused(onnx_bytes: bytes) -> None:
    with pytest.raises(InvalidModel, match="not an ONNX model"):
        check_onnx_bytes(onnx_bytes[: len(onnx_bytes) // 2])
