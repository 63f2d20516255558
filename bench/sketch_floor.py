"""Closed loop: the design's floor (bench/sketch_app.py), onnxq and bare Celery, in one run:

    .venv/bin/python bench/sketch_floor.py [--triples 3] [--seconds 10] [--clients 16]
        [--burst-jobs 2000] [--report PATH]

Issue 12 names a minimal sketch of its job path as proof that 2x bare Celery is within reach of
the design. This measures that sketch beside onnxq and bare Celery, in alternating triples
(sketch, onnxq, bare, ...), with bench/closed_loop.py's clients and phase (16 client processes,
one single-row job at a time each, 10 s), and the CPU per job of every process group: what each
onnxq component costs above the sketch's; then each side's open-loop burst (`--burst-jobs`, 0 to
skip), collected 100 at a time as in bench/closed_loop.py. Writes its own section of
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
if Path(sys.path[0]).resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)

from bench import report  # noqa: E402
from bench.closed_loop import BARE_ENV  # noqa: E402
from bench.closed_loop_phase import Phase, run_phase  # noqa: E402
from bench.model import add_model_cache_option, breast_cancer, model_file, prepare_model  # noqa: E402
from bench.processes import Service, own_redis, redis_process, say, stop_on_signals  # noqa: E402
from bench.stack import CONCURRENCY, local_url, start_bare_worker, start_onnxq  # noqa: E402
from onnxq.devtools.processes import gateway_answers  # noqa: E402
from onnxq.devtools.redis_server import free_port  # noqa: E402
from onnxq.devtools.waiting import wait_until  # noqa: E402

OWNER = "bench/sketch_floor.py"
SIDES = ("sketch", "onnxq", "bare")
RATE_COLUMNS = [
    "triple",
    "sketch jobs/s",
    "onnxq jobs/s",
    "bare jobs/s",
    "**sketch ÷ bare**",
    "**onnxq ÷ bare**",
]


def start_sketch(redis_url: str, model_path: Path, workdir: Path) -> list[Service]:
    port = free_port()
    env = dict(os.environ, BENCH_REDIS_URL=redis_url, BENCH_MODEL_PATH=str(model_path))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    gateway = Service(
        "sketch-gateway",
        [
            *(sys.executable, "-m", "gunicorn", "--worker-class", "gthread", "--workers", "2"),
            *("--threads", "16", "-b", f"127.0.0.1:{port}", "bench.sketch_app:app"),
        ],
        env,
        workdir / "sketch_gateway.log",
        port=port,
    ).start()
    worker = Service(
        "sketch-worker",
        [sys.executable, "-m", "bench.sketch_app", "worker"],
        env,
        workdir / "sketch_worker.log",
    ).start()
    services = [gateway, worker]
    try:
        wait_until(
            lambda: (
                gateway_answers(local_url(port), "/v1/jobs/x?wait=0")
                or len(gateway.children()) >= 2
            ),
            60,
            "the sketch gateway",
        )
        wait_until(
            lambda: worker.output().count("sketch_worker_ready") >= CONCURRENCY, 60, "its workers"
        )
    except BaseException:
        for service in services:
            service.stop()
        raise
    return services


def closed(side: str, groups: dict[str, list[psutil.Process]], args: Any, **common: Any) -> Phase:
    say(f"{side}: closed loop, {args.clients} clients, {args.seconds:g} s ...")
    return run_phase(
        "bare" if side == "bare" else "onnxq",
        "closed",
        seconds=args.seconds,
        clients=args.clients,
        groups=groups,
        **common,
    )


def process_tree(service: Any) -> list[psutil.Process]:
    return [psutil.Process(service.pid), *service.children()]


@contextlib.contextmanager
def side_running(
    side: str, model_dir: Path, redis_url: str, workdir: Path
) -> Iterator[tuple[dict[str, list[psutil.Process]], dict[str, Any]]]:
    """One side's servers, running: (its process groups, what its clients need); stopped after."""
    model_path = model_file(model_dir)
    if side == "sketch":
        gateway, worker = start_sketch(redis_url, model_path, workdir)
        stop = [gateway.stop, worker.stop]
        groups = {"gateway": process_tree(gateway), "worker": process_tree(worker)}
        common: dict[str, Any] = {"port": gateway.port}
    elif side == "onnxq":
        stack = start_onnxq(redis_url, model_dir, workdir)
        stop = [stack.stop]
        groups = {"gateway": process_tree(stack.gateway), "worker": process_tree(stack.worker)}
        common = {"port": stack.port}
    else:
        bare = start_bare_worker(redis_url, model_path, workdir, BARE_ENV)
        stop = [bare.stop]
        wait_until(
            lambda: bare.output().count("bare_celery_child_ready") >= CONCURRENCY,
            60,
            "bare Celery's sessions",
        )
        groups, common = {"worker": process_tree(bare)}, {"env": BARE_ENV}
    try:
        yield groups, common
    finally:
        for each in stop:
            each()


def run_triple(
    args: Any,
    model_dir: Path,
    rows: list[list[float]],
    base: str,
    redis: psutil.Process,
    n: int,
    workdir: Path,
) -> dict[str, Phase]:
    out: dict[str, Phase] = {}
    here = workdir / f"t{n}"
    for database, side in enumerate(SIDES):
        redis_url = f"{base}/{database}"
        (here / side).mkdir(parents=True)
        with side_running(side, model_dir, redis_url, here / side) as (groups, common):
            groups["redis-server"] = [redis]
            out[side] = closed(
                side,
                groups,
                args,
                rows=rows,
                workdir=here / side / "closed",
                redis_url=redis_url,
                **common,
            )
            if args.burst_jobs:
                say(f"{side}: burst of {args.burst_jobs} jobs ...")
                out[f"{side} burst"] = run_phase(
                    "bare" if side == "bare" else "onnxq",
                    "burst",
                    jobs=args.burst_jobs,
                    clients=args.clients,
                    groups=groups,
                    rows=rows,
                    workdir=here / side / "burst",
                    redis_url=redis_url,
                    **common,
                )
    for kind in ("", " burst"):
        if f"bare{kind}" not in out:
            continue
        s, o, b = (out[side + kind].rate for side in SIDES)
        say(
            f"triple {n}{kind}: sketch {s:,.0f}, onnxq {o:,.0f}, bare {b:,.0f} jobs/s "
            f"(sketch {s / b:.2f}x, onnxq {o / b:.2f}x bare; onnxq {o / s:.2f}x sketch)"
        )
    return out


def cpu(phase: Phase) -> dict[str, float]:
    used = phase.cpu_ms_per_job()
    used["client"] = phase.client_cpu * 1000 / max(1, len(phase.ok))
    used.pop("clients", None)
    return used


def render(results: dict[str, Any]) -> str:
    triples: list[dict[str, Phase]] = results["triples"]
    lines = [
        f"## Sketch floor, run of {results['date']}",
        "",
        "```sh",
        results["command"],
        "```",
        "",
        f"- machine: {results['machine']['nproc']} cores ({results['machine']['cpu']}), "
        f"{results['machine']['memory']}; load average before "
        f"{results['machine']['load_before']}, after {results['load_after']}",
        f"- code: {results['git']}",
        "- sketch: bench/sketch_app.py (gunicorn gthread 2x16, a Redis list, 2 worker processes "
        "taking up to 64 jobs per session.run, the result awaited by BLPOP in the request; no "
        "validation, auth, records, crash safety, logs or metrics); onnxq and bare Celery as in "
        "bench/closed_loop.py; 16 closed-loop client processes each",
        "",
    ]
    header = [*RATE_COLUMNS, "onnxq ÷ sketch", "p50 sketch / onnxq / bare"]
    rows, ratios = [], {"s": [], "o": [], "os": []}
    for n, triple in enumerate(triples, 1):
        s, o, b = (triple[side] for side in SIDES)
        ratios["s"].append(s.rate / b.rate)
        ratios["o"].append(o.rate / b.rate)
        ratios["os"].append(o.rate / s.rate)
        rows.append(
            [
                n,
                f"{s.rate:,.0f}",
                f"{o.rate:,.0f}",
                f"{b.rate:,.0f}",
                f"**{s.rate / b.rate:.2f}**",
                f"**{o.rate / b.rate:.2f}**",
                f"{o.rate / s.rate:.2f}",
                " / ".join(report.ms(p.latency(50)) for p in (s, o, b)),
            ]
        )
    rows.append(
        [
            "**median**",
            "",
            "",
            "",
            f"**{statistics.median(ratios['s']):.2f}**",
            f"**{statistics.median(ratios['o']):.2f}**",
            f"{statistics.median(ratios['os']):.2f}",
            "",
        ]
    )
    lines += report.table(header, "rrrrrrrl", rows)
    lines += [
        "",
        "CPU per job by process group (ms, median of the triples; the clients' own getrusage):",
        "",
    ]
    groups = ["gateway", "worker", "redis-server", "client"]
    table_rows = []
    for group in groups:
        cells = [group]
        for side in SIDES:
            values = [cpu(t[side]).get(group) for t in triples]
            known = [v for v in values if v is not None]
            cells.append(f"{statistics.median(known):.2f}" if known else "—")
        table_rows.append(cells)
    totals = ["**all**"]
    for side in SIDES:
        totals.append(f"**{statistics.median(sum(cpu(t[side]).values()) for t in triples):.2f}**")
    table_rows.append(totals)
    lines += report.table(["process group", "sketch", "onnxq", "bare Celery"], "lrrr", table_rows)
    if "bare burst" in triples[0]:
        lines += ["", *burst_lines(triples, results["args"])]
    return "\n".join(lines)


def burst_lines(triples: list[dict[str, Phase]], args: dict[str, Any]) -> list[str]:
    """The open-loop burst of each side: jobs/s and the ratios, per triple and their median."""
    rows, ratios = [], {"s": [], "o": []}
    for n, triple in enumerate(triples, 1):
        s, o, b = (triple[f"{side} burst"] for side in SIDES)
        ratios["s"].append(s.rate / b.rate)
        ratios["o"].append(o.rate / b.rate)
        cpu_cells = [f"{sum(cpu(p).values()):.2f}" for p in (s, o, b)]
        rows.append(
            [
                n,
                *(f"{p.rate:,.0f}" for p in (s, o, b)),
                f"**{s.rate / b.rate:.2f}**",
                f"**{o.rate / b.rate:.2f}**",
                " / ".join(cpu_cells),
            ]
        )
    median_s, median_o = statistics.median(ratios["s"]), statistics.median(ratios["o"])
    rows.append(["**median**", "", "", "", f"**{median_s:.2f}**", f"**{median_o:.2f}**", ""])
    header = [*RATE_COLUMNS, "CPU ms/job sketch / onnxq / bare"]
    return [
        f"Open-loop burst: {args['burst_jobs']:,} single-row jobs from the same "
        f"{args['clients']} clients, submitted without waiting, then collected up to 100 at a "
        "time (the sketch's `GET /v1/jobs?ids=` pops each result in turn; onnxq's ids poll; bare "
        "`ResultSet.join_native()`):",
        "",
        *report.table(header, "rrrrrrl", rows),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--triples", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--burst-jobs", type=int, default=2000, help="0: no burst phase")
    report.add_report_option(parser)
    add_model_cache_option(parser)
    args = parser.parse_args(argv)
    stop_on_signals()
    started = time.monotonic()
    results: dict[str, Any] = {**report.run_details(OWNER), "args": vars(args)}
    workdir = Path(tempfile.mkdtemp(prefix="onnxq-sketch-"))
    try:
        model_dir = prepare_model(args.model_cache)
        rows = breast_cancer().tolist()
        with contextlib.ExitStack() as cleanup:
            redis = cleanup.enter_context(own_redis(workdir / "redis"))
            base = redis.url.rsplit("/", 1)[0]
            proc = redis_process(redis)
            results["triples"] = [
                run_triple(args, model_dir, rows, base, proc, n, workdir)
                for n in range(1, args.triples + 1)
            ]
    except BaseException:
        say(f"logs kept in {workdir}")
        raise
    results["load_after"] = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    results["seconds"] = time.monotonic() - started
    report.write_section(args.report, OWNER, render(results))
    say(f"wrote {args.report}")
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
