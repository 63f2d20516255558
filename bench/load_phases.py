"""bench/load.py's measurements: the floor/onnxq pairs (and gunicorn variants), the py-spy profile
of the gateway workers, the job submits with the worker's drain, and the soak."""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from bench.load_client import LoadResult, run_load
from bench.meters import CpuMeter, process_tree, sample_rss
from bench.model import MODEL_NAME
from bench.processes import Service, say
from bench.pyspy import Profile, start_pyspy, stop_pyspy, summarise_profile
from bench.stack import OnnxqStack, metric
from onnxq.devtools.waiting import wait_until


@dataclass
class Run:
    name: str
    result: LoadResult
    cpu: dict[str, float]  # share of the machine's cores, by process group
    load: tuple[float, float, float]


@dataclass
class Soak:
    result: LoadResult
    rate: float
    rss: list[tuple[float, float]] = field(default_factory=list)  # (seconds, MiB)


def measured(
    name: str, groups: dict[str, list[psutil.Process]], load: Callable[[], LoadResult]
) -> Run:
    meter = CpuMeter(groups).start()
    result = load()
    meter.stop()
    cores = meter.capacity
    cpu = {group: used / cores for group, used in meter.used.items()}
    cpu["client"] = result.client_cpu / cores
    cpu["other processes (noise)"] = max(0.0, meter.other - result.client_cpu) / cores
    return Run(name, result, cpu, os.getloadavg())


def onnxq_groups(stack: OnnxqStack) -> dict[str, list[psutil.Process]]:
    return {
        "onnxq gateway": process_tree(stack.gateway),
        "onnxq worker": process_tree(stack.worker),
    }


def profile_gateway(
    stack: OnnxqStack, requests: list[bytes], load: dict[str, Any], seconds: float, workdir: Path
) -> Profile:
    """py-spy on each gunicorn worker while the same closed-loop load runs."""
    workers = stack.gateway_workers()
    files = {
        f"gateway worker {n}": workdir / f"gateway-{n}.txt" for n in range(1, len(workers) + 1)
    }
    spies: list[Service] = []
    try:
        for worker, out in zip(workers, files.values(), strict=True):
            spies.append(start_pyspy(worker.pid, out, None))
        time.sleep(1.0)
        run_load(stack.port, requests, **{**load, "duration": seconds})
    finally:
        stop_pyspy(spies)
    return summarise_profile("gateway workers, sync predict load", files, top=15)


def run_phases(
    args: argparse.Namespace,
    floor: Service,
    stack: OnnxqStack,
    variants: dict[str, OnnxqStack],
    requests: dict[str, list[bytes]],
    load: dict[str, Any],
    workdir: Path,
) -> dict[str, Any]:
    """Warm-up, the floor/onnxq pairs (and variants), the profile, the submits, the soak."""
    floor_port = floor.port
    assert floor_port is not None
    say("warming up both servers ...")
    run_load(floor_port, requests["floor"], connections=4, duration=2)
    run_load(stack.port, requests["predict"], connections=4, duration=2)

    pairs: list[tuple[Run, Run]] = []
    single_pairs: list[tuple[Run, Run]] = []  # the same, one connection
    one: dict[str, Any] = {**load, "connections": 1, "processes": 1}
    variant_runs: list[tuple[int, Run]] = []
    for n in range(args.repeat):
        say(f"pair {n + 1}/{args.repeat}: floor, then onnxq sync predict ...")
        floor_run = measured(
            "floor",
            {"floor (gunicorn)": process_tree(floor)},
            lambda: run_load(floor_port, requests["floor"], **load),
        )
        onnxq_run = measured(
            "onnxq sync predict",
            onnxq_groups(stack),
            lambda: run_load(stack.port, requests["predict"], probe_path="/health", **load),
        )
        pairs.append((floor_run, onnxq_run))
        say(f"pair {n + 1}/{args.repeat}: floor, then onnxq, one connection ...")
        single_pairs.append(
            (
                measured(
                    "floor, 1 connection",
                    {"floor (gunicorn)": process_tree(floor)},
                    lambda: run_load(floor_port, requests["floor"], **one),
                ),
                measured(
                    "onnxq sync predict, 1 connection",
                    onnxq_groups(stack),
                    lambda: run_load(stack.port, requests["predict"], **one),
                ),
            )
        )
        for name, variant in variants.items():
            run = measured(
                f"onnxq {name}",
                {"onnxq gateway": process_tree(variant.gateway)},
                lambda v=variant: run_load(
                    v.port, requests["predict"], probe_path="/health", **load
                ),
            )
            variant_runs.append((n, run))
        say(
            f"  floor {floor_run.result.rate:,.0f} req/s p99 "
            f"{floor_run.result.pct(99) * 1000:.1f} ms; onnxq "
            f"{onnxq_run.result.rate:,.0f} req/s p99 "
            f"{onnxq_run.result.pct(99) * 1000:.1f} ms"
        )

    profile = None
    if args.profile > 0:
        say(f"profiling the gateway workers for {args.profile:.0f} s under load ...")
        profile = profile_gateway(stack, requests["predict"], load, args.profile, workdir)

    say("onnxq job submits ...")

    def succeeded() -> float:
        return metric(stack.worker_metrics_port, "onnxq_jobs_succeeded_total", model=MODEL_NAME)

    before = succeeded()
    submits = measured(
        "onnxq job submit",
        onnxq_groups(stack),
        lambda: run_load(stack.port, requests["submit"], probe_path="/health", **load),
    )
    accepted = submits.result.statuses.get(202, 0)
    drain_started = time.monotonic()
    wait_until(
        lambda: succeeded() - before >= accepted, 600, "the worker to run every submitted job"
    )
    drain_seconds = time.monotonic() - drain_started

    soak = None
    if args.soak > 0:
        rate = args.soak_share * statistics.median(onnxq.result.rate for _, onnxq in pairs)
        soak = run_soak(stack, requests["predict"], load, rate, args.soak)
    return {
        "pairs": pairs,
        "single_pairs": single_pairs,
        "submits": submits,
        "drain_seconds": drain_seconds,
        "accepted": accepted,
        "soak": soak,
        "profile": profile,
        "variants": variant_runs,
    }


def run_soak(
    stack: OnnxqStack, requests: list[bytes], load: dict[str, Any], rate: float, seconds: float
) -> Soak:
    """Open loop at `rate` for `seconds`, RSS of every gateway and worker process every 5 s."""
    say(f"soak: {seconds:.0f} s at {rate:,.0f} req/s ...")
    procs = process_tree(stack.gateway, stack.worker)
    samples: list[tuple[float, float]] = []
    stop = threading.Event()
    sampler = threading.Thread(target=sample_rss, args=(procs, 5.0, samples, stop))
    sampler.start()
    try:
        result = run_load(
            stack.port,
            requests,
            rate=rate,
            probe_path="/health",
            **{**load, "duration": seconds},
        )
    finally:
        stop.set()
        sampler.join()
    return Soak(result, rate, samples)
