"""Throughput of onnxq vs a bare Celery service and raw ONNX Runtime: one machine, one run.

    .venv/bin/python bench/throughput.py [--jobs 2000] [--rows 100000] [--repeat 3] [--report PATH]

1. builds (or reuses) the RandomForest-100 breast-cancer demo model;
2. bare Celery (bench/bare_celery.py, prefork 2, Redis broker + result backend) runs N single-row
   tasks submitted with apply_async;
3. onnxq (gunicorn gateway + `python -m worker`) runs the same N single-row jobs submitted and
   polled over HTTP; then a second, profiled load (py-spy) shows where the CPU goes;
4. one 100,000-row onnxq job against session.run on the same rows in this process;
5. writes docs/benchmarks.md, or --report PATH (only the generated block between its markers
   is replaced).

Everything runs on its own redis-server on a free port; every process started here is stopped on
the way out, also on Ctrl-C. See docs/benchmarks.md for how to read the numbers. The steps are in
throughput_single.py, throughput_profile.py and throughput_large.py; the report's text in
throughput_report.py and throughput_report_large.py.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# As a script, Python puts bench/ first on sys.path, where bench/drift.py would hide the drift
# package: import from the repository root instead.
if Path(sys.path[0]).resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)

from bench import report  # noqa: E402
from bench.model import (  # noqa: E402
    add_model_cache_option,
    breast_cancer,
    model_file,
    prepare_model,
)
from bench.processes import own_redis, redis_process, say, stop_on_signals  # noqa: E402
from bench.stack import OnnxqStack, start_onnxq  # noqa: E402
from bench.throughput_large import large_body, run_large  # noqa: E402
from bench.throughput_profile import (  # noqa: E402
    PROFILE_SECONDS,
    profile_large_job,
    profile_single_row,
)
from bench.throughput_report import render  # noqa: E402
from bench.throughput_report_large import reading  # noqa: E402
from bench.throughput_single import (  # noqa: E402
    measure_onnxq,
    pair_noise,
    raw_single_row,
    run_bare,
)

OWNER = "bench/throughput.py"  # names the generated block in docs/benchmarks.md


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000, help="single-row jobs per side")
    parser.add_argument("--rows", type=int, default=100_000, help="rows of the one large job")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="bare/onnxq pairs run back to back; details from the quietest",
    )
    report.add_report_option(parser, "--output")
    add_model_cache_option(parser)
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    parser.add_argument(
        "--profile-seconds",
        type=float,
        default=PROFILE_SECONDS,
        help="seconds of py-spy under the single-row load",
    )
    parser.add_argument(
        "--no-large-profile", action="store_true", help="skip the profiled second large job"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stop_on_signals()
    script_started = time.monotonic()
    results: dict[str, Any] = {
        **report.run_details(OWNER),
        "rows": args.rows,
        "profile_seconds": args.profile_seconds,
    }
    workdir = Path(tempfile.mkdtemp(prefix="onnxq-bench-"))
    say(f"work directory {workdir}")
    try:
        with contextlib.ExitStack() as cleanup:
            run_steps(args, results, workdir, cleanup, script_started)
    except BaseException:
        say(f"logs kept in {workdir}")
        raise
    if args.keep:
        say(f"logs kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def run_steps(
    args: argparse.Namespace,
    results: dict[str, Any],
    workdir: Path,
    cleanup: contextlib.ExitStack,
    script_started: float,
) -> None:
    """Every step in order; `cleanup` stops whatever was started, also on errors."""
    # 1. the model and the data
    model_dir = prepare_model(args.model_cache)
    model_path = model_file(model_dir)
    results["model_kb"] = model_path.stat().st_size / 1024
    data = breast_cancer()
    rows = data.tolist()
    results["raw_single"] = raw_single_row(model_path, data, 3000)

    redis = cleanup.enter_context(own_redis(workdir / "redis"))
    redis_proc = redis_process(redis)
    base = redis.url.rsplit("/", 1)[0]

    # 2 and 3. bare Celery (its own Redis database on the same server), then onnxq right after;
    # the pair is repeated (--repeat) because the machine is shared and noisy
    pairs: list[dict[str, Any]] = []
    stack: OnnxqStack | None = None
    for rep in range(args.repeat):
        if stack is not None:
            stack.stop()  # nothing else runs while bare Celery is measured
        bare_dir, onnxq_dir = workdir / f"bare-{rep + 1}", workdir / f"onnxq-{rep + 1}"
        bare_dir.mkdir()
        onnxq_dir.mkdir()
        bare = run_bare(f"{base}/1", model_path, rows, args.jobs, bare_dir, redis_proc)
        say(f"pair {rep + 1}/{args.repeat}: bare Celery {bare.rate_available:,.0f} jobs/s")
        stack = start_onnxq(f"{base}/0", model_dir, onnxq_dir)
        cleanup.callback(stack.stop)
        pair = measure_onnxq(stack, rows, args.jobs, redis.url, redis_proc)
        pair["bare"] = bare
        pairs.append(pair)
        say(
            f"pair {rep + 1}/{args.repeat}: onnxq {pair['onnxq'].rate_available:,.0f} jobs/s "
            f"({pair['onnxq'].rate_available / bare.rate_available:.2f} x bare)"
        )
    assert stack is not None
    results["pairs"] = pairs
    quietest = min(range(len(pairs)), key=lambda i: pair_noise(pairs[i]))
    results["detail_pair"] = quietest + 1
    results.update(pairs[quietest])

    # 5. profiles of the single-row path, under the same load
    say(f"profiling the single-row path for {args.profile_seconds:g} s ...")
    results["profile_single"] = profile_single_row(
        stack, rows, redis_proc, workdir, args.profile_seconds
    )

    # 4. the large job vs raw onnxruntime, back to back
    big, body = large_body(data, args.rows)
    run_large(stack.port, model_path, big, body, results)

    if not args.no_large_profile:
        say("profiling a second large job ...")
        results["profile_large"], results["profile_large_seconds"] = profile_large_job(
            stack, body, args.rows, workdir
        )

    stack.stop()
    results["script_seconds"] = time.monotonic() - script_started
    results["reading"] = reading(results)
    report.write_section(args.report, OWNER, render(results))
    say(f"wrote {args.report}")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; every process started here was stopped", file=sys.stderr)
        sys.exit(130)
