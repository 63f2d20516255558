"""bench/throughput.py, section 3: py-spy on every gateway worker, Celery child and the Celery
main process, under the single-row load (with the CPU it took, the profiler's own apart) and
during one more large job."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from bench.job_client import JobTrace, now, onnxq_load
from bench.meters import CpuMeter
from bench.processes import Service
from bench.pyspy import Profile, start_pyspy, stop_pyspy, summarise_profile
from bench.stack import OnnxqStack
from bench.throughput_large import large_job
from bench.throughput_single import onnxq_groups

PROFILE_SECONDS = 10


def profile_targets(stack: OnnxqStack) -> dict[str, int]:
    targets = {}
    for i, child in enumerate(stack.gateway_workers()):
        targets[f"gateway-{i}"] = child.pid
    for i, child in enumerate(stack.worker_children()):
        targets[f"worker-child-{i}"] = child.pid
    targets["worker-main"] = stack.worker.pid
    return targets


def grouped_profiles(label: str, files: dict[str, Path]) -> list[Profile]:
    groups = {
        "gunicorn workers (gateway)": {k: v for k, v in files.items() if k.startswith("gateway")},
        "Celery prefork children (worker)": {
            k: v for k, v in files.items() if k.startswith("worker-child")
        },
        "Celery main process (worker, consumer)": {
            k: v for k, v in files.items() if k == "worker-main"
        },
    }
    return [summarise_profile(f"{label}: {group}", members) for group, members in groups.items()]


def _targets(stack: OnnxqStack, prefix: Path) -> dict[str, tuple[int, Path]]:
    """Each process of the stack to profile: its pid and its `<prefix>-<name>.txt`."""
    return {
        name: (pid, prefix.with_name(f"{prefix.name}-{name}.txt"))
        for name, pid in profile_targets(stack).items()
    }


def _paths(targets: dict[str, tuple[int, Path]]) -> dict[str, Path]:
    return {name: out for name, (_, out) in targets.items()}


def _spy_on(
    targets: dict[str, tuple[int, Path]], duration: float | None, spies: list[Service]
) -> None:
    """One py-spy per target, added to `spies` as it starts (so that it is stopped)."""
    for pid, out in targets.values():
        spies.append(start_pyspy(pid, out, duration))


def profile_single_row(
    stack: OnnxqStack,
    rows: list[list[float]],
    redis_process: psutil.Process,
    workdir: Path,
    seconds: float = PROFILE_SECONDS,
) -> dict[str, Any]:
    """`seconds` of py-spy under the single-row client load; profiles, CPU, jobs in the window."""
    stop = threading.Event()
    traces: list[JobTrace] = []

    def profiled_load() -> None:
        traces.extend(onnxq_load(stack.port, rows, None, stop)[0])

    loader = threading.Thread(target=profiled_load, daemon=True)
    loader.start()
    targets = _targets(stack, workdir / "profile-single")
    spies: list[Service] = []
    try:
        time.sleep(1.0)
        _spy_on(targets, seconds, spies)
        reaped_before = os.times()  # py-spy's CPU shows up here once it has exited and been reaped
        meter = CpuMeter(onnxq_groups(stack, redis_process)).start()
        started = now()
        for spy in spies:
            spy.wait(seconds + 30)
        meter.stop()
        reaped = os.times()
        pyspy_cpu = (
            reaped.children_user
            + reaped.children_system
            - reaped_before.children_user
            - reaped_before.children_system
        )
        meter.used["py-spy (the profiler itself)"] = pyspy_cpu
        meter.other = max(0.0, meter.other - pyspy_cpu)
        ended = now()
    finally:
        stop_pyspy(spies)
        stop.set()
    loader.join(120)
    in_window = [t for t in traces if t.status == "succeeded" and started <= t.finished_at <= ended]
    return {
        "profiles": grouped_profiles("single-row jobs", _paths(targets)),
        "cpu": meter,
        "jobs": len(in_window),
        "rate": len(in_window) / (ended - started),
    }


def profile_large_job(
    stack: OnnxqStack, body: bytes, rows: int, workdir: Path
) -> tuple[list[Profile], float]:
    """py-spy from the submit of one more large job until its result was fetched."""
    targets = _targets(stack, workdir / "profile-large")
    spies: list[Service] = []
    try:
        _spy_on(targets, None, spies)
        time.sleep(0.5)  # let py-spy attach
        profiled = large_job(stack.port, body, rows)
    finally:
        stop_pyspy(spies)
    return grouped_profiles(f"{rows:,}-row job", _paths(targets)), profiled["total"]
