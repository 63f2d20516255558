"""The model repository on disk: models/<name>/<version>/{model.onnx, manifest.json}."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path

from onnxq.errors import InvalidModel, ModelNotFound
from onnxq.manifest import MANIFEST_FILE, MODEL_FILE, Manifest
from onnxq.model import OnnxModel, SessionConfig

DEFAULT_CACHE_SECONDS = 2.0

# Names become directory names: keep them to a safe, portable alphabet so that
# no request can address anything outside the repository.
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def is_model_name(name: str) -> bool:
    return bool(MODEL_NAME.fullmatch(name)) and ".." not in name


def check_model_name(name: str) -> str:
    if not is_model_name(name):
        raise ModelNotFound(name)
    return name


class ModelRepository:
    """Finds model versions under a root directory and keeps one warm session per version."""

    def __init__(self, root: Path, config: SessionConfig | None = None):
        self.root = root
        self.config = config or SessionConfig()
        self._loaded: dict[tuple[str, int], OnnxModel] = {}
        self._defaults: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            entry.name
            for entry in self.root.iterdir()
            if entry.is_dir() and is_model_name(entry.name) and self.versions(entry.name)
        )

    def versions(self, name: str) -> list[int]:
        directory = self.root / check_model_name(name)
        if not directory.is_dir():
            return []
        return sorted(
            int(entry.name)
            for entry in directory.iterdir()
            if entry.name.isdigit() and (entry / MANIFEST_FILE).is_file()
        )

    def default_version(self, name: str) -> int:
        """Return the version served when a request names none: the highest, for now.

        Asked on every request, so the directory listing behind it is reused for
        a second or two; a new version is seen within DEFAULT_CACHE_SECONDS.
        """
        now = time.monotonic()
        cached = self._defaults.get(name)
        if cached is not None and now - cached[0] < DEFAULT_CACHE_SECONDS:
            return cached[1]
        versions = self.versions(name)
        if not versions:
            raise ModelNotFound(name)
        self._defaults[name] = (now, versions[-1])
        return versions[-1]

    def manifest(self, name: str, version: int | None = None) -> Manifest:
        return self.get(name, version).manifest

    def get(self, name: str, version: int | None = None) -> OnnxModel:
        """Return the loaded model version, loading it on first use."""
        resolved = self.default_version(name) if version is None else version
        key = (check_model_name(name), resolved)
        model = self._loaded.get(key)
        if model is not None:
            return model
        with self._lock:
            model = self._loaded.get(key)
            if model is None:
                model = self._open(name, resolved)
                model.load()
                self._loaded[key] = model
        return model

    def load_defaults(self) -> list[OnnxModel]:
        """Load the default version of every model; called once per process after fork."""
        return [self.get(name) for name in self.names()]

    @property
    def ready(self) -> bool:
        return bool(self._loaded) and all(model.ready for model in self._loaded.values())

    def _open(self, name: str, version: int) -> OnnxModel:
        directory = self.root / name / str(version)
        if not (directory / MANIFEST_FILE).is_file():
            raise ModelNotFound(name, version)
        try:
            manifest = Manifest.read(directory)
        except ValueError as exc:
            raise InvalidModel(
                f"{directory / MANIFEST_FILE} is not a valid manifest: {exc}"
            ) from exc
        if manifest.name != name or manifest.version != version:
            raise InvalidModel(
                f"{directory} holds a manifest for {manifest.name}/{manifest.version}"
            )
        return OnnxModel(directory, manifest, self.config)

    def add_version(self, manifest: Manifest, model_bytes: bytes) -> Path:
        """Write a new version directory atomically: readers never see half a model."""
        check_model_name(manifest.name)
        target = self.root / manifest.name / str(manifest.version)
        if target.exists():
            raise InvalidModel(f"{target} already exists; versions are immutable")
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{manifest.version}-", dir=target.parent))
        staging.chmod(0o755)  # mkdtemp makes it private; other users serve it too
        try:
            (staging / MODEL_FILE).write_bytes(model_bytes)
            manifest.write(staging)
            os.replace(staging, target)
            self._defaults.pop(manifest.name, None)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return target
