"""A/B runs of onnxq's single-row path under different settings (configuration only, no code).

    .venv/bin/python bench/variants.py [--variants default,wait2,nobatch,sync] [--reps 2]
                                       [--jobs 1000]

Each variant gets a fresh gateway + worker on one shared redis-server; variants run in
alternating order (A B C A B C ...) so that the noise of a shared machine spreads over all of
them. Prints a Markdown table of median jobs/s and CPU per job, each relative to the first
variant. The client and the measurements are bench/throughput.py's (bench/job_client.py,
bench/meters.py).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# As a script, Python puts bench/ first on sys.path, where bench/drift.py would hide the drift
# package: import from the repository root instead.
if Path(sys.path[0]).resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)

import psutil  # noqa: E402

from bench.job_client import WARMUP_JOBS, onnxq_load, summarise_onnxq  # noqa: E402
from bench.meters import CpuMeter  # noqa: E402
from bench.model import add_model_cache_option, breast_cancer, prepare_model  # noqa: E402
from bench.processes import own_redis, redis_process, say  # noqa: E402
from bench.report import table  # noqa: E402
from bench.stack import start_onnxq  # noqa: E402
from onnxq.devtools.redis_server import RedisServer  # noqa: E402

# name: (what it changes, extra ONNXQ_* environment, extra gunicorn arguments)
VARIANTS: dict[str, tuple[str, dict[str, str], list[str]]] = {
    "default": ("as shipped", {}, []),
    "wait0": (
        "ONNXQ_MICROBATCH_WAIT_MS=0 (take only jobs already waiting)",
        {"ONNXQ_MICROBATCH_WAIT_MS": "0"},
        [],
    ),
    "wait2": (
        "ONNXQ_MICROBATCH_WAIT_MS=2 (poll the queue up to 2 ms for more jobs)",
        {"ONNXQ_MICROBATCH_WAIT_MS": "2"},
        [],
    ),
    "nobatch": (
        "ONNXQ_MICROBATCH_MAX_JOBS=1 (micro-batching off)",
        {"ONNXQ_MICROBATCH_MAX_JOBS": "1"},
        [],
    ),
    "sync": ("gunicorn --worker-class sync", {}, ["--worker-class", "sync"]),
    "threads1": ("gunicorn --threads 1", {}, ["--threads", "1"]),
}


def run_variant(
    name: str,
    redis: RedisServer,
    model_dir: Path,
    workdir: Path,
    rows: list[list[float]],
    jobs: int,
) -> dict[str, float]:
    _, extra_env, gunicorn_args = VARIANTS[name]
    workdir.mkdir(parents=True)
    stack = start_onnxq(redis.url, model_dir, workdir, extra_env, gunicorn_args)
    try:
        onnxq_load(stack.port, rows, WARMUP_JOBS)
        meter = CpuMeter(
            {
                "client": [psutil.Process()],
                "gateway": stack.gateway_workers(),
                "worker main": [psutil.Process(stack.worker.pid)],
                "worker children": stack.worker_children(),
                "redis-server": [redis_process(redis)],
            },
            redis.url,
        ).start()
        traces, _ = onnxq_load(stack.port, rows, jobs)
        meter.stop()
    finally:
        stack.stop()
    result = summarise_onnxq(traces, name)
    out = {
        "rate": result.rate_available,
        "cpu": sum(meter.used.values()) * 1000 / result.ok,
        "gateway": meter.used["gateway"] * 1000 / result.ok,
        "worker": (meter.used["worker main"] + meter.used["worker children"]) * 1000 / result.ok,
        "redis_cmds": sum(meter.redis_calls.values()) / result.ok,
        "other": meter.other / meter.capacity,
    }
    say(
        f"{name}: {out['rate']:,.0f} jobs/s, {out['cpu']:.2f} ms CPU/job, "
        f"others on the machine {out['other']:.0%}"
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", default="default,wait2,nobatch,sync")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=1000)
    add_model_cache_option(parser)
    args = parser.parse_args(argv)
    names = args.variants.split(",")
    unknown = [name for name in names if name not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; known: {', '.join(VARIANTS)}")
    model_dir = prepare_model(args.model_cache)
    rows = breast_cancer().tolist()
    results: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    with (
        tempfile.TemporaryDirectory(prefix="onnxq-variants-") as tmp,
        own_redis(Path(tmp) / "redis") as redis,
    ):
        for rep in range(args.reps):
            for name in names:
                directory = Path(tmp) / f"{name}-{rep}"
                run = run_variant(name, redis, model_dir, directory, rows, args.jobs)
                results[name].append(run)

    def median(name: str, key: str) -> float:
        return statistics.median(run[key] for run in results[name])

    base = names[0]
    print(f"\n{args.jobs} single-row jobs per run, {args.reps} run(s) per variant, medians:\n")
    header = [
        "variant",
        "jobs/s",
        f"vs {base}",
        "CPU ms/job",
        "gateway",
        "worker",
        "Redis cmds/job",
        "others on the machine",
    ]
    rows_out = [
        [
            f"{name}: {VARIANTS[name][0]}",
            f"{median(name, 'rate'):,.0f}",
            f"{median(name, 'rate') / median(base, 'rate'):.2f}",
            f"{median(name, 'cpu'):.2f}",
            f"{median(name, 'gateway'):.2f}",
            f"{median(name, 'worker'):.2f}",
            f"{median(name, 'redis_cmds'):.1f}",
            f"{median(name, 'other'):.0%}",
        ]
        for name in names
    ]
    print("\n".join(table(header, "lrrrrrrr", rows_out)))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
