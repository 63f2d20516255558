"""Load test: onnxq's synchronous predict and job submits against the bare Flask floor.

    .venv/bin/python bench/load.py [--duration 20] [--connections 16] [--repeat 2] [--soak 300]

In one run, on one machine:
1. the floor (bench/floor_app.py: Flask + gunicorn, 2 sync workers, onnxruntime) and onnxq
   (gunicorn gateway with an API key required, `python -m worker`, its own redis-server on a
   free port) serve the RandomForest-100 demo model;
2. floor and onnxq sync predict, one row per request, N connections at maximum rate, back to
   back `--repeat` times; /health is probed every 20 ms during each onnxq run;
3. onnxq job submits at maximum rate (the worker drains them; its /metrics says how many ran);
4. a soak: onnxq sync predict at 70 % of its measured maximum, open loop, RSS of every
   onnxq process sampled every 5 s;
5. the ratios and targets, appended to docs/benchmarks.md (its own generated block only).

Every process started here is stopped on the way out, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

from bench import throughput as tp  # noqa: E402
from bench.load_client import LoadResult, build_request, run_load  # noqa: E402
from onnxq.devtools.metrics_text import sample  # noqa: E402
from onnxq.devtools.redis_server import RedisServer, free_port  # noqa: E402

API_KEY = "bench-load-key"
REPORT_BEGIN = "<!-- bench/load.py: generated block begins -->"
REPORT_END = "<!-- bench/load.py: generated block ends -->"


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


def start_floor(model_path: Path, workdir: Path) -> tp.Service:
    port = free_port()
    env = {**os.environ, "FLOOR_MODEL": str(model_path), "PYTHONPATH": str(ROOT)}
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "-w",
        "2",
        "-k",
        "sync",
        "-b",
        f"127.0.0.1:{port}",
        "bench.floor_app:create_app()",
    ]
    service = tp.Service("floor", command, env, workdir / "floor.log").start()
    service.port = port  # type: ignore[attr-defined]
    tp.wait_until(lambda: answers(port, "/health"), 60, "the floor to answer")
    tp.wait_until(lambda: len(service.children()) >= 2, 30, "the floor's workers")
    return service


def answers(port: int, path: str) -> bool:
    import http.client

    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        connection.request("GET", path)
        ok = connection.getresponse().status == 200
        connection.close()
        return ok
    except OSError:
        return False


def processes(*services: tp.Service) -> list[psutil.Process]:
    found = []
    for service in services:
        if service.alive():
            found.append(psutil.Process(service.pid))
            found += psutil.Process(service.pid).children(recursive=True)
    return found


def measured(name: str, groups: dict[str, list[psutil.Process]], load: Any) -> Run:
    meter = tp.CpuMeter(groups).start()
    result = load()
    meter.stop()
    cores = meter.capacity
    cpu = {group: used / cores for group, used in meter.used.items()}
    cpu["client"] = result.client_cpu / cores
    cpu["other processes (noise)"] = max(0.0, meter.other - result.client_cpu) / cores
    return Run(name, result, cpu, os.getloadavg())


def rss_sampler(
    procs: list[psutil.Process],
    every: float,
    samples: list[tuple[float, float]],
    stop: threading.Event,
) -> None:
    started = time.monotonic()
    while not stop.is_set():
        total = 0
        for process in procs:
            with contextlib.suppress(psutil.Error):  # a process that just exited
                total += process.memory_info().rss
        samples.append((time.monotonic() - started, total / 2**20))
        stop.wait(every)


def profile_gateway(
    stack: tp.OnnxqStack,
    port: int,
    requests: list[bytes],
    load: dict[str, Any],
    seconds: float,
    workdir: Path,
) -> tp.Profile:
    """py-spy on each gunicorn worker while the same closed-loop load runs."""
    files = {
        f"gateway worker {n}": workdir / f"gateway-{n}.txt"
        for n, _ in enumerate(stack.gateway_workers(), 1)
    }
    workers = stack.gateway_workers()
    spies = [
        tp.start_pyspy(worker.pid, out, None)
        for worker, out in zip(workers, files.values(), strict=True)
    ]
    try:
        time.sleep(1.0)
        run_load(port, requests, **{**load, "duration": seconds})
    finally:
        tp.stop_pyspy(spies)
    return tp.summarise_profile("gateway workers, sync predict load", files, top=15)


def scrape(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url, timeout=5) as answer:
        return answer.read().decode()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per measured run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--client-processes", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2, help="floor/onnxq pairs")
    parser.add_argument("--soak", type=float, default=300.0, help="soak seconds (0: none)")
    parser.add_argument("--soak-share", type=float, default=0.7)
    parser.add_argument(
        "--profile",
        type=float,
        default=10.0,
        help="seconds of py-spy on the gateway workers under load (0: none)",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=GUNICORN_ARGS",
        help="also measure onnxq with these gunicorn flags, e.g. "
        "'threads1=--threads 1' (repeatable)",
    )
    parser.add_argument("--no-write", action="store_true", help="do not touch docs/benchmarks.md")
    parser.add_argument(
        "--model-cache", type=Path, default=Path(tempfile.gettempdir()) / "onnxq-bench-model"
    )
    args = parser.parse_args(argv)
    began = time.monotonic()
    machine = tp.machine()
    model_dir = tp.prepare_model(args.model_cache)
    model_path = model_dir / tp.MODEL_NAME / "1" / "model.onnx"
    rows = tp.breast_cancer().tolist()
    bodies = [json.dumps({"instances": [row]}).encode() for row in rows[:256]]
    auth = {"Authorization": f"Bearer {API_KEY}"}
    onnxq_predicts = [
        build_request("POST", f"/v1/models/{tp.MODEL_NAME}/predict", b, auth) for b in bodies
    ]
    onnxq_submits = [
        build_request("POST", f"/v1/models/{tp.MODEL_NAME}/jobs", b, auth) for b in bodies
    ]
    floor_predicts = [build_request("POST", "/predict", b) for b in bodies]
    load = {
        "connections": args.connections,
        "duration": args.duration,
        "processes": args.client_processes,
    }
    with tempfile.TemporaryDirectory(prefix="onnxq-load-") as tmp:
        workdir = Path(tmp)
        redis = RedisServer(free_port(), workdir / "redis", appendonly=True)
        redis.start()
        services: list[tp.Service] = []
        try:
            floor = start_floor(model_path, workdir)
            services.append(floor)
            metrics_port = free_port()
            stack = tp.start_onnxq(
                redis.url,
                model_dir,
                workdir,
                extra_env={
                    "ONNXQ_API_KEYS": API_KEY,
                    "ONNXQ_ALLOW_UNAUTHENTICATED": "false",
                    "ONNXQ_WORKER_METRICS_PORT": str(metrics_port),
                },
            )
            services += [stack.gateway, stack.worker]
            port = stack.port
            variants: dict[str, tp.OnnxqStack] = {}
            for spec in args.variant:
                name, _, flags = spec.partition("=")
                (workdir / name).mkdir()
                # Own queue: its worker must not run the default stack's jobs.
                variants[name] = tp.start_onnxq(
                    redis.url,
                    model_dir,
                    workdir / name,
                    extra_env={
                        "ONNXQ_API_KEYS": API_KEY,
                        "ONNXQ_ALLOW_UNAUTHENTICATED": "false",
                        "ONNXQ_WORKER_METRICS_PORT": str(free_port()),
                        "ONNXQ_QUEUE_NAME": f"onnxq.predict.{name}",
                    },
                    gunicorn_args=flags.split(),
                )
                services += [variants[name].gateway, variants[name].worker]
            tp.say("warming up both servers ...")
            run_load(floor.port, floor_predicts, connections=4, duration=2)  # type: ignore[attr-defined]
            run_load(port, onnxq_predicts, connections=4, duration=2)

            pairs: list[tuple[Run, Run]] = []
            variant_runs: list[tuple[int, Run]] = []
            for n in range(args.repeat):
                tp.say(f"pair {n + 1}/{args.repeat}: floor, then onnxq sync predict ...")
                floor_run = measured(
                    "floor",
                    {"floor (gunicorn)": processes(floor)},
                    lambda: run_load(floor.port, floor_predicts, **load),
                )  # type: ignore[attr-defined]
                onnxq_run = measured(
                    "onnxq sync predict",
                    {
                        "onnxq gateway": processes(stack.gateway),
                        "onnxq worker": processes(stack.worker),
                    },
                    lambda: run_load(port, onnxq_predicts, probe_path="/health", **load),
                )
                pairs.append((floor_run, onnxq_run))
                for name, variant in variants.items():
                    variant_runs.append(
                        (
                            n,
                            measured(
                                f"onnxq {name}",
                                {"onnxq gateway": processes(variant.gateway)},
                                lambda v=variant: run_load(
                                    v.port, onnxq_predicts, probe_path="/health", **load
                                ),
                            ),
                        )
                    )
                tp.say(
                    f"  floor {floor_run.result.rate:,.0f} req/s p99 "
                    f"{floor_run.result.pct(99) * 1000:.1f} ms; onnxq "
                    f"{onnxq_run.result.rate:,.0f} req/s p99 "
                    f"{onnxq_run.result.pct(99) * 1000:.1f} ms"
                )

            profile = None
            if args.profile > 0:
                tp.say(f"profiling the gateway workers for {args.profile:.0f} s under load ...")
                profile = profile_gateway(stack, port, onnxq_predicts, load, args.profile, workdir)

            tp.say("onnxq job submits ...")
            worker_url = f"http://127.0.0.1:{metrics_port}/metrics"
            before = sample(scrape(worker_url), "onnxq_jobs_succeeded_total", model=tp.MODEL_NAME)
            submits = measured(
                "onnxq job submit",
                {
                    "onnxq gateway": processes(stack.gateway),
                    "onnxq worker": processes(stack.worker),
                },
                lambda: run_load(port, onnxq_submits, probe_path="/health", **load),
            )
            accepted = submits.result.statuses.get(202, 0)

            def drained() -> bool:
                done = sample(scrape(worker_url), "onnxq_jobs_succeeded_total", model=tp.MODEL_NAME)
                return done - before >= accepted

            drain_started = time.monotonic()
            tp.wait_until(drained, 600, "the worker to run every submitted job")
            drain_seconds = time.monotonic() - drain_started

            soak = None
            if args.soak > 0:
                best = statistics.median(onnxq.result.rate for _, onnxq in pairs)
                rate = args.soak_share * best
                tp.say(f"soak: {args.soak:.0f} s at {rate:,.0f} req/s ...")
                procs = processes(stack.gateway, stack.worker)
                samples: list[tuple[float, float]] = []
                stop = threading.Event()
                sampler = threading.Thread(target=rss_sampler, args=(procs, 5.0, samples, stop))
                sampler.start()
                try:
                    result = run_load(
                        port,
                        onnxq_predicts,
                        rate=rate,
                        probe_path="/health",
                        **{**load, "duration": args.soak},
                    )
                finally:
                    stop.set()
                    sampler.join()
                soak = Soak(result, rate, samples)
            gateway_metrics = scrape(f"http://127.0.0.1:{port}/metrics")
        finally:
            for service in reversed(services):
                service.stop()
            redis.kill()
    report = {
        "machine": machine,
        "pairs": pairs,
        "submits": submits,
        "drain_seconds": drain_seconds,
        "accepted": accepted,
        "soak": soak,
        "profile": profile,
        "variants": variant_runs,
        "args": args,
        "wall": time.monotonic() - began,
        "versions": tp.versions(),
        "code": tp.git_state(),
        "gateway_requests": sample(
            gateway_metrics,
            "onnxq_http_requests_total",
            route="/v1/models/<name>/predict",
            method="POST",
            status="200",
        ),
    }
    from bench.load_report import render

    text = render(report)
    print(text)
    if not args.no_write:
        write_report(ROOT / "docs" / "benchmarks.md", text)
    return 0


def write_report(path: Path, block: str) -> None:
    current = path.read_text(encoding="utf-8")
    stamped = f"{REPORT_BEGIN}\n\n{block.strip()}\n\n{REPORT_END}"
    if REPORT_BEGIN in current and REPORT_END in current:
        head, rest = current.split(REPORT_BEGIN, 1)
        tail = rest.split(REPORT_END, 1)[1]
        path.write_text(head + stamped + tail, encoding="utf-8")
    else:
        path.write_text(current.rstrip() + "\n\n" + stamped + "\n", encoding="utf-8")


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


if __name__ == "__main__":
    sys.exit(main())
