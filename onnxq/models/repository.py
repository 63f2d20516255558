"""The model repository on disk: models/<name>/<version>/{model.onnx, manifest.json, ...}.

Which version a request without one gets is models/<name>/DEFAULT (the version number, replaced
atomically by `onnxq promote` and `onnxq rollback`); a model without that file serves its highest
version, as every model did before promotion existed.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path

import structlog

from drift.atomic_file import write_text_atomically
from onnxq.errors import InvalidModel, ModelNotFound, OnnxqError
from onnxq.models.manifest import MANIFEST_FILE, MODEL_FILE, Manifest, VersionPaths
from onnxq.models.session import OnnxModel, SessionConfig

DEFAULT_CACHE_SECONDS = 2.0
DEFAULT_FILE = "DEFAULT"

log = structlog.get_logger("onnxq.repository")

# Names become directory names: keep them to a safe, portable alphabet so that
# no request can address anything outside the repository.
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def is_model_name(name: str) -> bool:
    return bool(MODEL_NAME.fullmatch(name)) and ".." not in name


def check_model_name(name: str) -> str:
    if not is_model_name(name):
        raise ModelNotFound(name)
    return name


# Versions are counted from 1; one past this is not a version anybody registered (and a
# 256-digit number would not even make a valid file name).
MAX_VERSION = 2**31 - 1


def check_version(name: str, version: int) -> int:
    """A version is a positive int (never a string that could carry a path)."""
    if type(version) is not int or not 1 <= version <= MAX_VERSION:
        shown = version if isinstance(version, int) and version <= MAX_VERSION else None
        raise ModelNotFound(name, shown)
    return version


class ModelRepository:
    """Finds model versions under a root directory and keeps one warm session per version."""

    def __init__(self, root: Path, config: SessionConfig | None = None):
        self.root = root
        self.config = config or SessionConfig()
        self._loaded: dict[tuple[str, int], OnnxModel] = {}
        self._defaults: dict[str, tuple[float, int]] = {}
        # The default version each model was last served with, kept while a new default that
        # cannot be loaded is refused: a bad promotion must not fail requests.
        self._served: dict[str, int] = {}
        self._refused: dict[tuple[str, int], float] = {}  # default versions that failed to load
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
            if entry.name.isdigit() and VersionPaths(entry).manifest.is_file()
        )

    def paths(self, name: str, version: int) -> VersionPaths:
        """The files of version `version` of `name` (which need not exist)."""
        return VersionPaths.of(self.root, check_model_name(name), check_version(name, version))

    def default_version(self, name: str) -> int:
        """Return the version served when a request names none: DEFAULT, else the highest.

        Asked on every request, so the answer is reused for DEFAULT_CACHE_SECONDS: a promotion or
        rollback reaches every process within that time, without a restart.
        """
        now = time.monotonic()
        cached = self._defaults.get(name)
        if cached is not None and now - cached[0] < DEFAULT_CACHE_SECONDS:
            return cached[1]
        try:
            version = self._read_default(name)
        except InvalidModel as exc:
            if cached is None:
                raise
            log.error(
                "default_version_unreadable", model=name, keeping=cached[1], error=exc.message
            )
            version = cached[1]
        self._defaults[name] = (now, version)
        return version

    def pinned_default(self, name: str) -> int | None:
        """The version in models/<name>/DEFAULT, or None when the model has no such file."""
        path = self.root / check_model_name(name) / DEFAULT_FILE
        try:
            text = path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidModel(f"{path} cannot be read: {exc}") from exc
        if not text.isdigit() or int(text) < 1:
            raise InvalidModel(f"{path} must hold a version number, not {text[:20]!r}")
        return int(text)

    def set_default(self, name: str, version: int) -> None:
        """Make `version` the default: DEFAULT is replaced in one rename, never half written."""
        check_version(name, version)
        if version not in self.versions(name):
            raise ModelNotFound(name, version)
        write_text_atomically(self.root / name / DEFAULT_FILE, f"{version}\n")
        self._defaults.pop(name, None)

    def _read_default(self, name: str) -> int:
        versions = self.versions(name)
        if not versions:
            raise ModelNotFound(name)
        pinned = self.pinned_default(name)
        if pinned is None:
            return versions[-1]
        if pinned not in versions:
            raise InvalidModel(
                f"{self.root / name / DEFAULT_FILE} names version {pinned}, "
                f"which is not in the repository (versions: {versions})"
            )
        return pinned

    def manifest(self, name: str, version: int | None = None) -> Manifest:
        return self.get(name, version).manifest

    def get(self, name: str, version: int | None = None) -> OnnxModel:
        """Return the loaded model version, loading it on first use.

        Without a version, the default; if a new default cannot be loaded (a bad file), the
        version served before it keeps being served and the failure is logged.
        """
        if version is not None:
            return self._get(name, check_version(name, version))
        resolved = self.default_version(name)
        previous = self._served.get(name)
        refused_at = self._refused.get((name, resolved), -math.inf)
        if previous is not None and time.monotonic() - refused_at < DEFAULT_CACHE_SECONDS:
            return self._get(name, previous)  # not re-read and re-logged on every request
        try:
            model = self._get(name, resolved)
        except OnnxqError as exc:
            if previous is None or previous == resolved:
                raise
            self._refused[(name, resolved)] = time.monotonic()
            log.error(
                "default_version_refused",
                model=name,
                version=resolved,
                keeping=previous,
                error=exc.message,
            )
            return self._get(name, previous)
        self._refused.pop((name, resolved), None)
        if previous != resolved:
            self._served[name] = resolved
            if previous is not None:
                log.info("default_version_changed", model=name, version=resolved, previous=previous)
        return model

    def _get(self, name: str, version: int) -> OnnxModel:
        key = (check_model_name(name), version)
        model = self._loaded.get(key)
        if model is not None:
            return model
        with self._lock:
            model = self._loaded.get(key)
            if model is None:
                model = self._open(name, version)
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
        paths = self.paths(name, version)
        directory = paths.directory
        if not paths.manifest.is_file():
            raise ModelNotFound(name, version)
        if not directory.resolve().is_relative_to(self.root.resolve()):
            # A version directory that is a symlink to somewhere else is not served.
            raise InvalidModel(f"{directory} leads outside the model repository")
        try:
            manifest = Manifest.read(directory)
        except ValueError as exc:
            raise InvalidModel(f"{paths.manifest} is not a valid manifest: {exc}") from exc
        if manifest.name != name or manifest.version != version:
            raise InvalidModel(
                f"{directory} holds a manifest for {manifest.name}/{manifest.version}"
            )
        return OnnxModel(directory, manifest, self.config)

    def add_version(
        self, manifest: Manifest, model_bytes: bytes, extra_files: Mapping[str, bytes] | None = None
    ) -> Path:
        """Write a new version directory atomically: readers never see half a model.

        `extra_files` (plain file names) go beside the model, e.g. the drift profile.
        """
        check_model_name(manifest.name)
        for file_name in extra_files or {}:
            if not MODEL_NAME.fullmatch(file_name) or file_name in (MODEL_FILE, MANIFEST_FILE):
                raise InvalidModel(f"{file_name!r} cannot be written into a version directory")
        target = self.paths(manifest.name, manifest.version).directory
        if target.exists():
            raise InvalidModel(f"{target} already exists; versions are immutable")
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{manifest.version}-", dir=target.parent))
        staging.chmod(0o755)  # mkdtemp makes it private; other users serve it too
        try:
            VersionPaths(staging).model.write_bytes(model_bytes)
            for file_name, data in (extra_files or {}).items():
                (staging / file_name).write_bytes(data)
            manifest.write(staging)
            os.replace(staging, target)
            self._defaults.pop(manifest.name, None)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return target
