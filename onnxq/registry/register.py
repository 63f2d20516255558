"""Registering, promoting and rolling back model versions: the only way a model enters onnxq.

`register` takes a model.onnx written by `onnxq export` (its export.json and expected.npz beside
it), checks the bytes are ONNX, re-runs the parity check (a failure writes nothing), profiles the
training data for drift, and adds the next version. The new version is served only once promoted.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from onnxq.errors import InvalidInput, InvalidModel, ModelNotFound
from onnxq.models.manifest import DEFAULT_TOLERANCE, PROFILE_FILE, Manifest
from onnxq.models.onnx_file import check_onnx_bytes
from onnxq.models.repository import MODEL_NAME, ModelRepository, is_model_name
from onnxq.models.results import PredictionResult
from onnxq.registry.export import ExportBundle, build_manifest
from onnxq.registry.export_dir import (
    ExportRecord,
    feature_matrix,
    read_csv,
    read_export_dir,
    read_sample,
)
from onnxq.registry.parity import ValidationReport, run_onnx, validate_export
from onnxq.telemetry.drift_check import unprofiled_inputs

HISTORY_FILE = "history.jsonl"  # one line per promote / rollback, for the runbook
LOCK_FILE = ".lock"


@dataclass(frozen=True)
class Registration:
    manifest: Manifest
    path: Path
    report: ValidationReport
    promoted: bool


@dataclass(frozen=True)
class DefaultChange:
    name: str
    version: int
    previous: int


def checked_name(name: str) -> str:
    """A model name that is safe as a directory name, or a clear InvalidInput."""
    if not is_model_name(name):
        raise InvalidInput(
            f"{name!r} is not a valid model name: use 1-64 of A-Z a-z 0-9 _ . - , starting with "
            f"a letter or digit, without '..' ({MODEL_NAME.pattern})"
        )
    return name


@contextlib.contextmanager
def model_lock(repository: ModelRepository, name: str, create: bool = False) -> Iterator[None]:
    """Serialise registers and default changes of one model (two registers get two versions)."""
    directory = repository.root / checked_name(name)
    if create:
        directory.mkdir(parents=True, exist_ok=True)
    elif not repository.versions(name):
        raise ModelNotFound(name)
    with (directory / LOCK_FILE).open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def register_model(
    repository: ModelRepository,
    name: str,
    model_file: Path,
    reference: Path | None,
    *,
    promote: bool = False,
    tolerance: float = DEFAULT_TOLERANCE,
    sample: Path | None = None,
    held_out: Path | None = None,
) -> Registration:
    """Validate and add `model_file` as the next version of `name`; promote it if asked. The
    drift profile holds the `reference` (training) rows' features and, given `held_out` rows the
    model was not trained on, its outputs on them (never its outputs on its training rows). A
    tensor model has no features: its profile holds its outputs only."""
    checked_name(name)
    try:
        onnx_bytes = model_file.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"{model_file} cannot be read: {exc}") from exc
    check_onnx_bytes(onnx_bytes, str(model_file))
    record, expected = read_export_dir(model_file.parent)
    bundle = ExportBundle(onnx_bytes, record, expected)
    report = validate_export(onnx_bytes, record, expected, sample, tolerance, str(model_file))
    report.raise_if_failed()  # nothing is written for a model that does not reproduce its source

    training = _reference_frame(record, reference)
    # Everything that can fail on the user's input happens before the model directory is touched.
    draft = build_manifest(bundle, report, name=name, version=1)
    outputs = None
    if held_out is not None:
        inputs, _, _ = read_sample(held_out, record.features, record.nullable)
        result = PredictionResult.of(draft, run_onnx(onnx_bytes, record, inputs))
        outputs = result.profile_outputs()
    from drift.profile import build_profile

    profile = build_profile(
        training,
        outputs=outputs,
        outputs_source="held-out" if outputs is not None else None,
        model=name,
        skipped=unprofiled_inputs(draft),
    )
    with model_lock(repository, name, create=True):
        versions = repository.versions(name)
        version = versions[-1] + 1 if versions else 1
        profile.version = version
        if versions and not promote and repository.pinned_default(name) is None:
            # A model from before DEFAULT existed serves its highest version; pin that first so
            # that adding an unpromoted version does not change what is served.
            repository.set_default(name, repository.default_version(name))
        manifest = build_manifest(
            bundle,
            report,
            name=name,
            version=version,
            source={
                "framework": record.framework,
                "framework_version": record.framework_version,
                **record.source,
                "exported_at": record.created_at.isoformat(),
                "sample": record.sample.model_dump(),
                "training_data": reference.name if reference else None,
                "training_rows": len(training),
            },
        )
        path = repository.add_version(
            manifest, onnx_bytes, {PROFILE_FILE: (profile.to_json() + "\n").encode()}
        )
        if promote:
            _switch_default(repository, name, version, "promote")
    return Registration(manifest, path, report, promote)


def _reference_frame(record: ExportRecord, reference: Path | None) -> pd.DataFrame:
    """The training rows' features, in the model's order (none for a tensor model)."""
    if not record.features:
        if reference is not None:
            raise InvalidInput(
                "a tensor model has no feature columns to profile: leave out --reference, and "
                "pass --held-out inputs (.npz) to profile its outputs"
            )
        return pd.DataFrame()
    if reference is None:
        raise InvalidInput("--reference (the training data CSV) is needed to profile features")
    training = feature_matrix(read_csv(reference), record.features, str(reference), record.nullable)
    return pd.DataFrame(training, columns=record.features)


def promote(repository: ModelRepository, name: str, version: int) -> DefaultChange:
    """Make `version` the default; it must load (ONNX bytes, checksum) before it is promoted."""
    with model_lock(repository, checked_name(name)):
        return _switch_default(repository, name, version, "promote")


def rollback(repository: ModelRepository, name: str, version: int | None = None) -> DefaultChange:
    """Move the default back: to `version`, or to the highest version below the current default."""
    with model_lock(repository, checked_name(name)):
        current = repository.default_version(name)
        if version is None:
            earlier = [v for v in repository.versions(name) if v < current]
            if not earlier:
                raise InvalidInput(
                    f"model '{name}' has no version before {current} to roll back to"
                )
            version = earlier[-1]
        return _switch_default(repository, name, version, "rollback")


def _switch_default(
    repository: ModelRepository, name: str, version: int, action: str
) -> DefaultChange:
    if version not in repository.versions(name):
        raise ModelNotFound(name, version)
    previous = repository.default_version(name)
    model = repository.get(name, version)  # refuses a file that is not ONNX or fails its sha256
    if not model.ready:
        raise InvalidModel(f"model '{name}' version {version} did not load")
    repository.set_default(name, version)
    entry = {
        "at": datetime.now(UTC).isoformat(),
        "action": action,
        "version": version,
        "previous": previous,
    }
    with (repository.root / name / HISTORY_FILE).open("a", encoding="utf-8") as history:
        history.write(json.dumps(entry) + "\n")
    return DefaultChange(name, version, previous)
