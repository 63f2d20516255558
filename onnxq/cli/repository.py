"""The model repository a command works on: the one ONNXQ_MODEL_DIR names, never a new one.

Run outside the project folder, a relative `models` would be a fresh directory nobody serves: a
`register` there wrote a model the gateway never saw. So every command but `demo-model` (which
makes the repository) refuses a directory that does not exist, naming it in full.
"""

from __future__ import annotations

from onnxq.errors import ModelRepositoryMissing
from onnxq.models.repository import ModelRepository
from onnxq.settings import Settings


def served_repository(settings: Settings) -> ModelRepository:
    """The repository at `settings.model_dir`; ModelRepositoryMissing if there is none."""
    root = settings.model_dir.resolve()
    if not root.is_dir():
        raise ModelRepositoryMissing(root)
    return ModelRepository(root)
