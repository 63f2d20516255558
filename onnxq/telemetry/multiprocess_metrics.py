"""The directory prometheus_client's multiprocess mode shares metric values through.

Deliberately free of any prometheus_client import: prometheus_client decides,
when it is first imported, whether values live in memory or in files under
PROMETHEUS_MULTIPROC_DIR. So a process tree (gunicorn master, Celery main
process) calls `prepare` first and imports onnxq.telemetry.metrics only afterwards; the
forked gunicorn workers and Celery children then inherit the variable.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

ENV_VAR = "PROMETHEUS_MULTIPROC_DIR"


def prepare(metrics_dir: Path | None, role: str) -> Path:
    """Create an empty metrics directory for this process tree and export it; return it.

    With `metrics_dir` set, `<metrics_dir>/<role>` is wiped and reused (files of
    an earlier run would otherwise be summed into this run's counters). Without
    it, a fresh temporary directory is made, so two stacks on one machine never
    share or wipe each other's files.
    """
    if metrics_dir is not None:
        directory = metrics_dir / role
        if directory.exists():
            shutil.rmtree(directory)
        directory.mkdir(parents=True)
    else:
        directory = Path(tempfile.mkdtemp(prefix=f"onnxq-metrics-{role}-"))
    os.environ[ENV_VAR] = str(directory)
    return directory


def remove(directory: Path) -> None:
    """Delete a directory `prepare` made (at the process tree's exit)."""
    shutil.rmtree(directory, ignore_errors=True)


def current_dir() -> str | None:
    """The directory this process records metric values in, if multiprocess mode is on."""
    return os.environ.get(ENV_VAR) or None
