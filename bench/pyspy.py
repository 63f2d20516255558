"""py-spy profiles of running services: record raw stacks of a process, then summarise them
(innermost frames, this repository's frames anywhere on the stack, self time by package)."""

from __future__ import annotations

import os
import shutil
import signal
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bench.processes import ROOT, Service, stop_all

PROFILE_RATE = 50  # samples per second


def pyspy_binary() -> str:
    candidate = Path(sys.executable).parent / "py-spy"
    found = str(candidate) if candidate.exists() else shutil.which("py-spy")
    if not found:
        raise RuntimeError("py-spy not found: .venv/bin/pip install py-spy")
    return found


def start_pyspy(pid: int, out: Path, duration: float | None) -> Service:
    """`py-spy record` of process `pid` into `out` (raw format), for `duration` s or until
    stop_pyspy."""
    command = [
        pyspy_binary(),
        "record",
        "--pid",
        str(pid),
        "--rate",
        str(PROFILE_RATE),
        "--nonblocking",
        "--format",
        "raw",
        "-o",
        str(out),
    ]
    if duration is not None:
        command += ["--duration", str(int(duration))]
    out.with_suffix(".log").unlink(missing_ok=True)
    return Service(f"py-spy {pid}", command, dict(os.environ), out.with_suffix(".log")).start()


def stop_pyspy(spies: list[Service], timeout: float = 30) -> None:
    """SIGINT: py-spy writes what it has, then exits."""
    stop_all(spies, timeout, signal.SIGINT)


def _frame_key(frame: str) -> tuple[str, str]:
    """'JobRunner.run (worker/jobs.py:55)' -> ('JobRunner.run', 'worker/jobs.py')."""
    name, _, where = frame.rpartition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    if path.startswith(str(ROOT) + "/"):
        path = path[len(str(ROOT)) + 1 :]
    return (name or frame), path


def _is_project(path: str) -> bool:
    top = path.split("/", 1)[0]
    return top in {"onnxq", "gateway", "worker", "bench"} and (ROOT / path).is_file()


def _package(path: str) -> str:
    if _is_project(path):
        return "onnxq (this repo)"
    if "site-packages/" in path:
        path = path.split("site-packages/", 1)[1]
    head = path.split("/", 1)[0]
    return head.removesuffix(".py") if "/" in path or head.endswith(".py") else head


@dataclass
class Profile:
    label: str
    samples: int
    per_process: dict[str, int]
    self_top: list[tuple[str, str, float]]
    project_inclusive: list[tuple[str, str, float]]
    by_package: list[tuple[str, float]]


def summarise_profile(label: str, files: dict[str, Path], top: int = 10) -> Profile:
    """The raw py-spy files of one group of processes, summed: shares of all their samples."""
    self_counts: Counter[tuple[str, str]] = Counter()
    inclusive: Counter[tuple[str, str]] = Counter()
    packages: Counter[str] = Counter()
    per_process: dict[str, int] = {}
    total = 0
    for name, path in files.items():
        count_here = 0
        if path.exists():
            for line in path.read_text(errors="replace").splitlines():
                stack, _, count_text = line.rpartition(" ")
                if not stack or not count_text.isdigit():
                    continue
                count = int(count_text)
                frames = [_frame_key(frame) for frame in stack.split(";") if frame]
                if not frames:
                    continue
                count_here += count
                self_counts[frames[-1]] += count
                packages[_package(frames[-1][1])] += count
                for key in set(frames):
                    if _is_project(key[1]):
                        inclusive[key] += count
        per_process[name] = count_here
        total += count_here
    share = (lambda c: c / total) if total else (lambda c: 0.0)
    return Profile(
        label=label,
        samples=total,
        per_process=per_process,
        self_top=[(n, p, share(c)) for (n, p), c in self_counts.most_common(top)],
        # frames on (nearly) every sample, like worker/__main__.py's main(), say nothing
        project_inclusive=[
            (n, p, share(c)) for (n, p), c in inclusive.most_common() if share(c) < 0.97
        ][: top + 5],
        by_package=[(k, share(c)) for k, c in packages.most_common(8)],
    )
