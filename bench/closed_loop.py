"""Closed-loop single-row jobs, onnxq vs bare Celery, in one run (issue 12's targets):

    .venv/bin/python bench/closed_loop.py [--pairs 3] [--seconds 10] [--clients 16]
        [--burst-jobs 2000] [--burst-collect many|each] [--idle-seconds 3] [--report PATH]

Alternating pairs (onnxq, bare, onnxq, bare, ...); each side, with only its own servers running:
1. closed loop: `--clients` client processes (bench/closed_loop_client.py), each submitting one
   single-row job and waiting for its result, again and again for `--seconds`: onnxq with
   `Prefer: wait=30` on the submit and `GET /v1/jobs/<id>?wait=30` if needed, bare Celery with
   `delay(row).get()`;
2. open-loop burst: the same clients submit `--burst-jobs` jobs in all, then collect them all,
   up to 100 at a time as each side's API offers (onnxq `GET /v1/jobs?ids=...&wait=30`, bare
   Celery `ResultSet.join_native()`), or with `--burst-collect each` one by one;
3. (onnxq) one client alone for `--idle-seconds`: finished_at → answer with no other load.
The same demo model (RandomForest-100, bench/model.py), one redis-server of its own (AOF
everysec; onnxq database 0, bare Celery database 1), prefork 2 on both sides; bare Celery with
acks_late and prefetch multiplier 1 (bench/bare_celery.py). Writes its own section of
docs/benchmarks.md (or --report PATH) with bench/report.py; the text is in closed_loop_report.py.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
# As a script, Python puts bench/ first on sys.path, where bench/drift.py would hide the drift
# package: import from the repository root instead.
if Path(sys.path[0]).resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)

from bench import report  # noqa: E402
from bench.closed_loop_phase import Phase, run_phase  # noqa: E402
from bench.closed_loop_report import render  # noqa: E402
from bench.model import add_model_cache_option, breast_cancer, model_file, prepare_model  # noqa: E402
from bench.processes import own_redis, redis_process, say, stop_on_signals  # noqa: E402
from bench.stack import CONCURRENCY, start_bare_worker, start_onnxq  # noqa: E402
from onnxq.devtools.waiting import wait_until  # noqa: E402

OWNER = "bench/closed_loop.py"  # names the generated block in docs/benchmarks.md
BARE_ENV = {"BENCH_ACKS_LATE": "1", "BENCH_PREFETCH": "1"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=3, help="alternating onnxq/bare pairs")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of a closed loop")
    parser.add_argument("--clients", type=int, default=16, help="client processes per side")
    parser.add_argument("--burst-jobs", type=int, default=2000, help="jobs of the open-loop burst")
    parser.add_argument(
        "--burst-collect",
        choices=["many", "each"],
        default="many",
        help="the burst's results collected up to 100 at a time, or each on its own",
    )
    parser.add_argument(
        "--idle-seconds", type=float, default=3.0, help="one onnxq client alone (0: skip)"
    )
    report.add_report_option(parser)
    add_model_cache_option(parser)
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stop_on_signals()
    started = time.monotonic()
    results: dict[str, Any] = {
        **report.run_details(OWNER),
        "args": vars(args),
    }
    workdir = Path(tempfile.mkdtemp(prefix="onnxq-closed-"))
    say(f"work directory {workdir}; load average {results['machine']['load_before']}")
    try:
        with contextlib.ExitStack() as cleanup:
            results["pairs"] = run_pairs(args, workdir, cleanup)
    except BaseException:
        say(f"logs kept in {workdir}")
        raise
    results["load_after"] = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    results["script_seconds"] = time.monotonic() - started
    report.write_section(args.report, OWNER, render(results))
    say(f"wrote {args.report}; load average now {results['load_after']}")
    if args.keep:
        say(f"logs kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def run_pairs(
    args: argparse.Namespace, workdir: Path, cleanup: contextlib.ExitStack
) -> list[dict[str, dict[str, Phase]]]:
    model_dir = prepare_model(args.model_cache)
    model_path = model_file(model_dir)
    rows = breast_cancer().tolist()
    redis = cleanup.enter_context(own_redis(workdir / "redis"))
    redis_proc = redis_process(redis)
    base = redis.url.rsplit("/", 1)[0]
    pairs = []
    for n in range(1, args.pairs + 1):
        pair = {
            "onnxq": onnxq_side(args, model_dir, rows, f"{base}/0", redis_proc, workdir / f"o{n}"),
            "bare": bare_side(args, model_path, rows, f"{base}/1", redis_proc, workdir / f"b{n}"),
        }
        o, b = pair["onnxq"]["closed"], pair["bare"]["closed"]
        say(
            f"pair {n}/{args.pairs}: onnxq {o.rate:,.0f} jobs/s p50 {o.latency(50) * 1e3:.1f} ms, "
            f"bare {b.rate:,.0f} jobs/s p50 {b.latency(50) * 1e3:.1f} ms "
            f"({o.rate / b.rate:.2f}x); burst {pair['onnxq']['burst'].rate:,.0f} vs "
            f"{pair['bare']['burst'].rate:,.0f} jobs/s"
        )
        pairs.append(pair)
    return pairs


def phases(
    args: argparse.Namespace,
    side: str,
    groups: dict[str, list[psutil.Process]],
    common: dict[str, Any],
    workdir: Path,
) -> dict[str, Phase]:
    out = {}
    say(f"{side}: closed loop, {args.clients} clients, {args.seconds:g} s ...")
    many = {**common, "groups": groups, "clients": args.clients}
    out["closed"] = run_phase(
        side, "closed", seconds=args.seconds, workdir=workdir / "closed", **many
    )
    say(f"{side}: burst of {args.burst_jobs} jobs ...")
    out["burst"] = run_phase(
        side,
        "burst",
        jobs=args.burst_jobs,
        collect=args.burst_collect,
        workdir=workdir / "burst",
        **many,
    )
    if side == "onnxq" and args.idle_seconds > 0:
        say(f"{side}: one client alone, {args.idle_seconds:g} s ...")
        alone = {**many, "clients": 1}
        out["idle"] = run_phase(
            side, "closed", seconds=args.idle_seconds, workdir=workdir / "idle", **alone
        )
    return out


def onnxq_side(
    args: argparse.Namespace,
    model_dir: Path,
    rows: list[list[float]],
    redis_url: str,
    redis_proc: psutil.Process,
    workdir: Path,
) -> dict[str, Phase]:
    workdir.mkdir()
    stack = start_onnxq(redis_url, model_dir, workdir)
    try:
        groups = {
            "gateway": [psutil.Process(stack.gateway.pid), *stack.gateway_workers()],
            "worker main": [psutil.Process(stack.worker.pid)],
            "worker children": stack.worker_children(),
            "redis-server": [redis_proc],
        }
        common = {"rows": rows, "redis_url": redis_url, "port": stack.port}
        return phases(args, "onnxq", groups, common, workdir)
    finally:
        stack.stop()


def bare_side(
    args: argparse.Namespace,
    model_path: Path,
    rows: list[list[float]],
    redis_url: str,
    redis_proc: psutil.Process,
    workdir: Path,
) -> dict[str, Phase]:
    workdir.mkdir()
    worker = start_bare_worker(redis_url, model_path, workdir, BARE_ENV)
    try:
        wait_until(lambda: len(worker.children()) >= CONCURRENCY, 60, "bare Celery's children")
        wait_until(
            lambda: worker.output().count("bare_celery_child_ready") >= CONCURRENCY,
            60,
            "bare Celery's sessions",
        )
        groups = {
            "worker main": [psutil.Process(worker.pid)],
            "worker children": worker.children(),
            "redis-server": [redis_proc],
        }
        common = {"rows": rows, "redis_url": redis_url, "env": BARE_ENV}
        return phases(args, "bare", groups, common, workdir)
    finally:
        worker.stop()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; every process started here was stopped", file=sys.stderr)
        sys.exit(130)
