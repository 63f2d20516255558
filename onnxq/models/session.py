"""A loaded model version: one warm ONNX Runtime session plus its manifest."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from onnxq.errors import InvalidModel, ModelNotReady
from onnxq.models.manifest import Manifest
from onnxq.models.onnx_file import check_onnx_bytes

if TYPE_CHECKING:
    import onnxruntime as ort

# onnxruntime is imported only where a session is made: a parent process
# (gunicorn master, Celery main process) that merely imported it hands its
# global state to forked children, which then abort when they exit.


@dataclass(frozen=True)
class SessionConfig:
    """Thread settings for every InferenceSession a process creates."""

    intra_op_threads: int = 1
    inter_op_threads: int = 1

    def session_options(self) -> ort.SessionOptions:
        import onnxruntime as ort

        options = ort.SessionOptions()
        # Explicit, so that N processes x threads never oversubscribe the cores
        # (ORT's default is one thread per core in every process).
        options.intra_op_num_threads = self.intra_op_threads
        options.inter_op_num_threads = self.inter_op_threads
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        return options


@dataclass(frozen=True)
class PredictionResult:
    """Labels and class probabilities for a batch of rows, in row order."""

    labels: list[Any]
    probabilities: list[list[float]]
    classes: list[Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "labels": self.labels,
            "probabilities": self.probabilities,
            "classes": self.classes,
        }


def float32_values(array: np.ndarray) -> list[Any]:
    """Nested lists of the shortest decimals that round-trip each float32 value.

    JSON clients then read 0.98, not 0.9800000190734863, and np.float32 of what
    they read is bit-for-bit the value onnxruntime produced.
    """
    # orjson writes float32 with its shortest round-trip decimal (17x faster than astype(str)).
    encoded = orjson.dumps(
        np.ascontiguousarray(array, dtype=np.float32), option=orjson.OPT_SERIALIZE_NUMPY
    )
    return orjson.loads(encoded)  # type: ignore[no-any-return]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class OnnxModel:
    """One model version: `load()` once per process, then `predict()` from any thread."""

    def __init__(self, directory: Path, manifest: Manifest, config: SessionConfig):
        self.directory = directory
        self.manifest = manifest
        self.config = config
        self.ready = False
        self._session: ort.InferenceSession | None = None
        self._loaded_in_pid: int | None = None

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> int:
        return self.manifest.version

    def load(self) -> None:
        """Verify the file against the manifest and create the session.

        The bytes are read once: the checksum and the ONNX check cover exactly the bytes that
        ONNX Runtime is given, so a file swapped in between cannot slip through.
        """
        path = self.directory / self.manifest.file
        if not path.is_file():
            raise InvalidModel(f"{path} is missing")
        data = path.read_bytes()
        actual = hashlib.sha256(data).hexdigest()
        if actual != self.manifest.sha256:
            raise InvalidModel(
                f"{path} does not match its manifest (sha256 {actual[:12]}..., "
                f"expected {self.manifest.sha256[:12]}...)"
            )
        check_onnx_bytes(data, str(path))
        import onnxruntime as ort

        self._session = ort.InferenceSession(
            data,
            sess_options=self.config.session_options(),
            providers=["CPUExecutionProvider"],
        )
        self._loaded_in_pid = os.getpid()
        self.ready = True

    def predict(self, rows: np.ndarray) -> PredictionResult:
        """Run a float32 matrix of shape (n, features) through the session."""
        session = self._session
        if session is None or not self.ready:
            raise ModelNotReady(f"model '{self.name}' version {self.version} is not loaded")
        if self._loaded_in_pid != os.getpid():
            # A session inherited across fork shares ORT thread pools with the
            # parent; refuse rather than risk a deadlock or corrupted state.
            raise ModelNotReady("ONNX Runtime session was created in another process")
        manifest = self.manifest
        labels, probabilities = session.run(
            [manifest.label_output, manifest.probability_output],
            {manifest.input_name: rows},
        )
        return PredictionResult(
            labels=labels.tolist(),
            probabilities=float32_values(probabilities),
            classes=list(manifest.class_labels),
        )
