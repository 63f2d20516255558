"""bench/throughput.py, section 1: N single-row jobs on bare Celery, then on onnxq, measured alike
(rates, latencies, CPU by process group, Redis commands); the worker's micro-batches; and what
one row costs in onnxruntime itself."""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import time
from collections import Counter
from datetime import UTC
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from bench.job_client import (
    WARMUP_JOBS,
    PhaseResult,
    now,
    onnxq_load,
    poll_only,
    summarise_onnxq,
)
from bench.meters import CpuMeter, pct
from bench.model import make_session
from bench.processes import say
from bench.stack import CONCURRENCY, OnnxqStack, start_bare_worker
from onnxq.devtools.waiting import wait_until


def raw_single_row(model_path: Path, rows: np.ndarray, n: int) -> dict[str, float]:
    """session.run on one row at a time, in this process: the floor a single-row job pays."""
    session = make_session(model_path)
    x = rows.astype(np.float32)
    for i in range(50):
        session.run(None, {"input": x[i : i + 1]})
    started = time.perf_counter()
    for i in range(n):
        j = i % len(x)
        session.run(None, {"input": x[j : j + 1]})
    elapsed = time.perf_counter() - started
    return {"per_call_s": elapsed / n, "calls_per_s": n / elapsed}


# --------------------------------------------------------------------------- bare Celery


def bare_load(task: Any, rows: list[list[float]], n: int) -> tuple[list[float], list[Any]]:
    submits, results = [], []
    for i in range(n):
        submits.append(now())
        results.append(task.apply_async(args=[rows[i % len(rows)]]))
    return submits, results


def run_bare(
    redis_url: str,
    model_path: Path,
    rows: list[list[float]],
    n: int,
    workdir: Path,
    redis_process: psutil.Process,
) -> PhaseResult:
    """Start bench/bare_celery.py, warm it up, time N `apply_async` + `result.get()`, stop it."""
    os.environ["BENCH_REDIS_URL"] = redis_url
    os.environ["BENCH_MODEL_PATH"] = str(model_path)
    from bench import bare_celery

    bare_celery.app.conf.update(broker_url=redis_url, result_backend=redis_url)
    worker = start_bare_worker(redis_url, model_path, workdir)
    try:
        wait_until(lambda: len(worker.children()) >= CONCURRENCY, 60, "bare Celery's children")
        # Warm-up: both children have a session and every connection is open.
        _, warm = bare_load(bare_celery.predict, rows, WARMUP_JOBS)
        for result in warm:
            result.get(timeout=60)
        children = worker.children()
        meter = CpuMeter(
            {
                "client (this script)": [psutil.Process()],
                "celery main (consumer)": [psutil.Process(worker.pid)],
                "celery children (ORT)": children,
                "redis-server": [redis_process],
            },
            redis_url,
        ).start()
        say(f"bare Celery: {n} single-row tasks ...")
        submits, results = bare_load(bare_celery.predict, rows, n)
        client_done, available, errors = [], [], 0
        for result in results:
            try:
                result.get(timeout=120)
            except Exception:  # a failed task counts as an error, not as a result
                errors += 1
                client_done.append(float("nan"))
                available.append(float("nan"))
                continue
            client_done.append(now())
            done = result.date_done
            if done.tzinfo is None:
                done = done.replace(tzinfo=UTC)
            available.append(done.timestamp())
        meter.stop()
        good = [i for i in range(n) if not np.isnan(available[i])]
        return PhaseResult(
            name="bare Celery",
            n=n,
            ok=len(good),
            errors=errors,
            first_submit=submits[0],
            last_available=max(available[i] for i in good),
            last_client=max(client_done[i] for i in good),
            latency_available=[available[i] - submits[i] for i in good],
            latency_client=[client_done[i] - submits[i] for i in good],
            cpu=meter,
            extra={"submit_s": submits[-1] - submits[0]},
        )
    finally:
        worker.stop()
        with contextlib.suppress(Exception):
            bare_celery.app.close()


# --------------------------------------------------------------------------- onnxq


def onnxq_groups(
    stack: OnnxqStack, redis_process: psutil.Process
) -> dict[str, list[psutil.Process]]:
    return {
        "client (this script)": [psutil.Process()],
        "gunicorn workers": stack.gateway_workers(),
        "gunicorn master": [psutil.Process(stack.gateway.pid)],
        "celery main (consumer)": [psutil.Process(stack.worker.pid)],
        "celery children (ORT)": stack.worker_children(),
        "redis-server": [redis_process],
    }


def measure_onnxq(
    stack: OnnxqStack,
    rows: list[list[float]],
    n: int,
    redis_url: str,
    redis_process: psutil.Process,
) -> dict[str, Any]:
    """Warm up, then N single-row jobs; the batch sizes and the gateway's submit/poll split."""
    onnxq_load(stack.port, rows, WARMUP_JOBS)
    meter = CpuMeter(onnxq_groups(stack, redis_process), redis_url).start()
    traces, reconnects = onnxq_load(stack.port, rows, n)
    meter.stop()
    onnxq = summarise_onnxq(traces, "onnxq")
    onnxq.cpu = meter
    onnxq.extra["reconnects"] = reconnects
    job_ids = [t.job_id for t in traces if t.job_id]
    batches = batch_summary(worker_job_events(stack.worker.log_path, set(job_ids)))
    split = poll_only(stack.port, job_ids[:1000], stack.gateway_workers())
    polls_per_job = statistics.fmean(t.polls for t in traces)
    gateway_ms = meter.used["gunicorn workers"] * 1000 / onnxq.ok
    split.update(
        polls_per_job=polls_per_job, submit_ms=gateway_ms - polls_per_job * split["poll_ms"]
    )
    return {"onnxq": onnxq, "batches": batches, "gateway_split": split}


def pair_noise(pair: dict[str, Any]) -> float:
    """The larger share of the machine other processes took during either run of a pair."""
    return max(p.cpu.other / p.cpu.capacity for p in (pair["bare"], pair["onnxq"]) if p.cpu)


def worker_job_events(log_path: Path, job_ids: set[str]) -> list[dict[str, Any]]:
    events = []
    for line in log_path.read_text(errors="replace").splitlines():
        if '"event": "job"' not in line and '"event":"job"' not in line:
            continue
        with contextlib.suppress(ValueError):
            event = json.loads(line)
            if event.get("event") == "job" and event.get("job_id") in job_ids:
                events.append(event)
    return events


def batch_summary(events: list[dict[str, Any]]) -> dict[str, Any]:
    sizes = [int(e["batch_jobs"]) for e in events if "batch_jobs" in e]
    if not sizes:
        return {}
    buckets = [(1, 1), (2, 3), (4, 7), (8, 15), (16, 31), (32, 63), (64, 10**9)]
    jobs_in: Counter[tuple[int, int]] = Counter()
    for size in sizes:
        for low, high in buckets:
            if low <= size <= high:
                jobs_in[(low, high)] += 1
    batches = sum(1 / s for s in sizes)
    return {
        "jobs": len(sizes),
        "batches": round(batches),
        "mean_per_batch": len(sizes) / batches,
        "job_weighted_mean": statistics.fmean(sizes),
        "max": max(sizes),
        "buckets": [(low, high, jobs_in[(low, high)]) for low, high in buckets],
        "duration_ms_p50": pct([float(e.get("duration_ms", 0)) for e in events], 50),
    }
