"""A loaded model version: one warm ONNX Runtime session plus its manifest."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from onnxq.errors import InvalidModel, ModelNotReady
from onnxq.models.manifest import Manifest
from onnxq.models.onnx_file import check_onnx_bytes
from onnxq.models.results import PredictionResult
from onnxq.models.tensors import model_feeds

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

    def predict(self, batch: np.ndarray, outputs: list[str] | None = None) -> PredictionResult:
        """Run a batch through the session: a float32 matrix (rows, features) for a tabular
        model, rows of `tensors.row_dtype` for a tensor model. The answer's outputs are always
        computed; `outputs` adds others to its raw `tensors` (V2 may ask for any)."""
        session = self._session
        if session is None or not self.ready:
            raise ModelNotReady(f"model '{self.name}' version {self.version} is not loaded")
        if self._loaded_in_pid != os.getpid():
            # A session inherited across fork shares ORT thread pools with the
            # parent; refuse rather than risk a deadlock or corrupted state.
            raise ModelNotReady("ONNX Runtime session was created in another process")
        manifest = self.manifest
        names = manifest.answer_outputs
        if outputs:
            names = names + [name for name in outputs if name not in names]
        arrays = session.run(names, model_feeds(manifest, batch))
        return PredictionResult.of(manifest, dict(zip(names, arrays, strict=True)))
