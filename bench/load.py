"""Load test: onnxq's synchronous predict and job submits against the bare Flask floor.

    .venv/bin/python bench/load.py [--duration 20] [--connections 16] [--repeat 2] [--soak 300]
                                   [--report PATH]

In one run, on one machine:
1. the floor (bench/floor_app.py: Flask + gunicorn, 2 sync workers, onnxruntime) and onnxq
   (gunicorn gateway with an API key required, `python -m worker`, its own redis-server on a
   free port) serve the RandomForest-100 demo model;
2. floor and onnxq sync predict, one row per request, N connections at maximum rate, back to
   back `--repeat` times; /health is probed every 20 ms during each onnxq run;
3. onnxq job submits at maximum rate (the worker drains them; its /metrics says how many ran);
4. a soak: onnxq sync predict at 70 % of its measured maximum, open loop, RSS of every
   onnxq process sampled every 5 s;
5. the ratios and targets, written to docs/benchmarks.md (its own generated block only).

Every process started here is stopped on the way out, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# As a script, Python puts bench/ first on sys.path, where bench/drift.py would hide the drift
# package: import from the repository root instead.
if Path(sys.path[0]).resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)

from bench import report  # noqa: E402
from bench.load_client import build_request  # noqa: E402
from bench.load_phases import run_phases  # noqa: E402
from bench.load_report import render  # noqa: E402
from bench.model import (  # noqa: E402
    MODEL_NAME,
    add_model_cache_option,
    breast_cancer,
    model_file,
    prepare_model,
)
from bench.processes import Service, own_redis  # noqa: E402
from bench.stack import OnnxqStack, scrape, start_floor, start_onnxq  # noqa: E402
from onnxq.devtools.metrics_text import sample  # noqa: E402
from onnxq.devtools.redis_server import free_port  # noqa: E402

API_KEY = "bench-load-key"
OWNER = "bench/load.py"  # names the generated block in docs/benchmarks.md


def start_keyed_onnxq(
    redis_url: str,
    model_dir: Path,
    workdir: Path,
    queue: str | None = None,
    gunicorn_args: list[str] | None = None,
) -> OnnxqStack:
    """onnxq with an API key required and the worker's /metrics on a free port."""
    extra_env = {
        "ONNXQ_API_KEYS": API_KEY,
        "ONNXQ_ALLOW_UNAUTHENTICATED": "false",
        "ONNXQ_WORKER_METRICS_PORT": str(free_port()),
    }
    if queue is not None:
        extra_env["ONNXQ_QUEUE_NAME"] = queue
    return start_onnxq(redis_url, model_dir, workdir, extra_env, gunicorn_args or [])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
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
    report.add_report_option(parser)
    parser.add_argument("--no-write", action="store_true", help="do not write the report file")
    add_model_cache_option(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.monotonic()
    machine = report.machine()
    model_dir = prepare_model(args.model_cache)
    rows = breast_cancer().tolist()
    bodies = [json.dumps({"instances": [row]}).encode() for row in rows[:256]]
    auth = {"Authorization": f"Bearer {API_KEY}"}
    requests = {
        "predict": [
            build_request("POST", f"/v1/models/{MODEL_NAME}/predict", b, auth) for b in bodies
        ],
        "submit": [build_request("POST", f"/v1/models/{MODEL_NAME}/jobs", b, auth) for b in bodies],
        "floor": [build_request("POST", "/predict", b) for b in bodies],
    }
    load = {
        "connections": args.connections,
        "duration": args.duration,
        "processes": args.client_processes,
    }
    with (
        tempfile.TemporaryDirectory(prefix="onnxq-load-") as tmp,
        own_redis(Path(tmp) / "redis") as redis,
    ):
        workdir = Path(tmp)
        services: list[Service] = []
        try:
            floor = start_floor(model_file(model_dir), workdir)
            services.append(floor)
            stack = start_keyed_onnxq(redis.url, model_dir, workdir)
            services += [stack.gateway, stack.worker]
            variants: dict[str, OnnxqStack] = {}
            for spec in args.variant:
                name, _, flags = spec.partition("=")
                (workdir / name).mkdir()
                # Own queue: its worker must not run the default stack's jobs.
                variants[name] = start_keyed_onnxq(
                    redis.url,
                    model_dir,
                    workdir / name,
                    queue=f"onnxq.predict.{name}",
                    gunicorn_args=flags.split(),
                )
                services += [variants[name].gateway, variants[name].worker]
            measurements = run_phases(args, floor, stack, variants, requests, load, workdir)
            gateway_metrics = scrape(stack.port)
        finally:
            for service in reversed(services):
                service.stop()
    measurements.update(
        machine=machine,
        args=args,
        wall=time.monotonic() - began,
        versions=report.versions(),
        code=report.git_state(),
        gateway_requests=sample(
            gateway_metrics,
            "onnxq_http_requests_total",
            route="/v1/models/<name>/predict",
            method="POST",
            status="200",
        ),
        date=report.utc_now(),
    )
    text = render(measurements)
    print(text)
    if not args.no_write:
        report.write_section(args.report, OWNER, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
