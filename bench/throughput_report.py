"""bench/throughput.py's section of docs/benchmarks.md: the run's setting, then section 1 (the
single-row pairs and the details of the quietest); sections 2-4 are in throughput_report_large.py.
"""

from __future__ import annotations

import statistics
from typing import Any

from bench.job_client import CLIENT_THREADS, POLL_FLOOR_SECONDS, PhaseResult
from bench.meters import pct
from bench.model import N_ESTIMATORS
from bench.report import count, ms, table, verdict
from bench.stack import CONCURRENCY
from bench.throughput_report_large import large_job_section, profile_section, reading_section


def render(results: dict[str, Any]) -> str:
    lines = [
        *setting(results),
        *single_row_section(results),
        *large_job_section(results),
        *profile_section(results),
        *reading_section(results),
    ]
    return "\n".join(lines)


def setting(results: dict[str, Any]) -> list[str]:
    m = results["machine"]
    return [
        f"## Run of {results['date']}",
        "",
        "```sh",
        results["command"],
        "```",
        "",
        f"- machine: {m['nproc']} cores ({m['cpu']}), {m['memory']}, Linux {m['kernel']}; "
        f"load average before the run {m['load_before']} (a shared, noisy machine)",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in results["versions"].items()),
        f"- code: {results['git']}",
        f"- wall time of the whole script: {results['script_seconds']:.0f} s",
        f"- model: RandomForestClassifier(n_estimators={N_ESTIMATORS}) on breast-cancer "
        f"(30 float32 features), ONNX {results['model_kb']:.0f} KB; every session "
        "intra_op_num_threads=1",
        f"- processes: prefork concurrency {CONCURRENCY} on both sides; onnxq gateway = gunicorn "
        f"{CONCURRENCY} gthread workers x 4 threads; one redis-server (AOF everysec) for all",
        f"- client: this script on the same machine; bare Celery = one thread calling "
        f"`apply_async` N times, then `result.get()` on each; onnxq = {CLIENT_THREADS} threads, "
        "one keep-alive `http.client` connection each, submitting while polling every job when "
        "its `Retry-After` is due (never more often than every "
        f"{POLL_FLOOR_SECONDS * 1000:.0f} ms)",
        "",
    ]


def _cpu_ms(phase: PhaseResult) -> float:
    return sum(phase.cpu_ms_per_job().values())


def _noise(phase: PhaseResult) -> str:
    assert phase.cpu is not None
    return f"{phase.cpu.other / phase.cpu.capacity:.0%}"


def single_row_section(results: dict[str, Any]) -> list[str]:
    bare: PhaseResult = results["bare"]
    onnxq: PhaseResult = results["onnxq"]
    pairs = results["pairs"]
    ratios = [p["onnxq"].rate_available / p["bare"].rate_available for p in pairs]
    median_ratio = statistics.median(ratios)
    lines = [
        f"### 1. {bare.n:,} single-row jobs: bare Celery vs onnxq (run back to back)",
        "",
        f'The pair (bare Celery, then onnxq) ran {len(pairs)} times; "noise" is the share of the '
        "2 cores that other processes on this shared machine used meanwhile.",
        "",
        *table(
            [
                "pair",
                "bare jobs/s",
                "onnxq jobs/s",
                "**onnxq ÷ bare**",
                "bare CPU ms/job",
                "onnxq CPU ms/job",
                "noise (bare / onnxq)",
            ],
            "rrrrrrl",
            (
                [
                    i,
                    count(p["bare"].rate_available),
                    count(p["onnxq"].rate_available),
                    f"**{r:.2f}**",
                    f"{_cpu_ms(p['bare']):.2f}",
                    f"{_cpu_ms(p['onnxq']):.2f}",
                    f"{_noise(p['bare'])} / {_noise(p['onnxq'])}",
                ]
                for i, (p, r) in enumerate(zip(pairs, ratios, strict=True), 1)
            ),
        ),
        "",
        f"**Median onnxq ÷ bare: {median_ratio:.2f}**; target ≥ 2 → {verdict(median_ratio >= 2)}.",
        "",
        f"The details below are from pair {results['detail_pair']}, the one least disturbed by "
        "other processes.",
        "",
        "\"Result available\" is when the result was stored: Celery's `date_done`, onnxq's "
        '`finished_at`; "client saw" is when the client had it in hand (after `result.get()`, '
        "or the poll that found it). Throughput is comparable; latency is not quite: the bare "
        "client queues all N tasks at once (open loop), so its latency is mostly waiting in the "
        f"queue, while the {CLIENT_THREADS} onnxq client threads wait for each 202 before the next "
        "submit (closed loop), and onnxq answers `Retry-After: 1`, which the client honours, so "
        '"client has it" cannot be under 1 s for onnxq.',
        "",
    ]
    noisy = [p.name for p in (bare, onnxq) if p.cpu and p.cpu.other > 0.2 * p.cpu.capacity]
    if noisy:
        lines += [
            f"**Noise warning:** other processes on the machine used more than 20% of the cores "
            f"during the {' and '.join(noisy)} run (see the CPU table); the ratio is less "
            "trustworthy than usual.",
            "",
        ]
    lines += [*_comparison(bare, onnxq), ""]
    single = results["raw_single"]
    lines += [
        "",
        "For scale: `session.run` on one row in-process costs "
        f"{single['per_call_s'] * 1e6:.0f} µs ({count(single['calls_per_s'])} rows/s on one "
        "core), measured before both runs.",
        "",
        "CPU used during each measured run, per process group (ms of CPU per job, and share of "
        f"the {results['machine']['nproc']} cores over the run):",
        "",
        *table(
            ["run", "process group", "CPU ms / job", "share of machine"],
            "llrr",
            (cells for phase in (bare, onnxq) for cells in _cpu_rows(phase)),
        ),
        "",
        "Redis commands per job during each measured run (`INFO commandstats`; every command is a "
        "round trip or part of a pipelined one):",
        "",
        *table(
            ["run", "commands / job", "the most frequent, per job"],
            "lrl",
            (_redis_row(phase) for phase in (bare, onnxq)),
        ),
        "",
    ]
    split = results.get("gateway_split")
    if split:
        lines += [
            f"Gateway CPU per request, measured separately: a poll of an ended single-row job "
            f"costs {split['poll_ms']:.2f} ms of gunicorn-worker CPU ({split['polls']:,} polls "
            f"from {CLIENT_THREADS} threads); the measured run made "
            f"{split['polls_per_job']:.2f} polls per job, which leaves ≈{split['submit_ms']:.2f} "
            "ms per submit.",
            "",
        ]
    return lines + _breakdown(onnxq) + _batches(results["batches"])


def _comparison(bare: PhaseResult, onnxq: PhaseResult) -> list[str]:
    rows: list[list[object]] = [
        [
            "**jobs/s** (first submit → last result available)",
            count(bare.rate_available),
            count(onnxq.rate_available),
            f"**{onnxq.rate_available / bare.rate_available:.2f}**",
        ],
        [
            "jobs/s (first submit → last result the client saw)",
            count(bare.rate_client),
            count(onnxq.rate_client),
            f"{onnxq.rate_client / bare.rate_client:.2f}",
        ],
    ]
    for what, attribute in [
        ("result available", "latency_available"),
        ("client has it", "latency_client"),
    ]:
        for q in (50, 99):
            b, o = pct(getattr(bare, attribute), q), pct(getattr(onnxq, attribute), q)
            rows.append([f"latency p{q}, submit → {what}", ms(b), ms(o), f"{o / b:.2f}"])
    rows.append(["failed jobs", bare.errors, onnxq.errors, ""])
    bare_cpu, onnxq_cpu = _cpu_ms(bare), _cpu_ms(onnxq)
    rows.append(
        [
            "CPU per job, all processes incl. client",
            f"{bare_cpu:.2f} ms",
            f"{onnxq_cpu:.2f} ms",
            f"{onnxq_cpu / bare_cpu:.2f}",
        ]
    )
    return table(["", "bare Celery", "onnxq", "onnxq ÷ bare"], "lrrr", rows)


def _cpu_rows(phase: PhaseResult) -> list[list[object]]:
    assert phase.cpu is not None
    capacity = phase.cpu.capacity
    rows: list[list[object]] = [
        [phase.name, name, f"{used * 1000 / phase.ok:.2f}", f"{used / capacity:.0%}"]
        for name, used in phase.cpu.used.items()
    ]
    total, other = sum(phase.cpu.used.values()), phase.cpu.other
    rows.append(
        [
            phase.name,
            "**all of it**",
            f"**{total * 1000 / phase.ok:.2f}**",
            f"**{total / capacity:.0%}**",
        ]
    )
    rows.append(
        [
            phase.name,
            "other processes on the machine (noise)",
            f"{other * 1000 / phase.ok:.2f}",
            f"{other / capacity:.0%}",
        ]
    )
    return rows


def _redis_row(phase: PhaseResult) -> list[object]:
    assert phase.cpu is not None
    calls = phase.cpu.redis_calls
    top = ", ".join(
        f"{name.upper()} {n / phase.ok:.1f}" for name, n in calls.most_common(8) if n > 0
    )
    return [phase.name, f"{sum(calls.values()) / phase.ok:.1f}", top]


def _breakdown(onnxq: PhaseResult) -> list[str]:
    e = onnxq.extra
    steps = [
        ("submit: POST → 202 at the client", "submit_http"),
        ("queued: submitted_at → started_at", "queued"),
        ("running: started_at → finished_at (whole micro-batch)", "running"),
    ]
    rows: list[list[object]] = [
        [label, ms(pct(e[key], 50)), ms(pct(e[key], 99))] for label, key in steps
    ]
    rows.append(
        ["polls per job", f"{statistics.fmean(e['polls']):.2f} (mean)", f"{max(e['polls'])} (max)"]
    )
    return [
        "onnxq per-job breakdown (medians; p99 in brackets):",
        "",
        *table(["step", "p50", "p99"], "lrr", rows),
        "",
    ]


def _batches(batches: dict[str, Any]) -> list[str]:
    if not batches:
        return []
    buckets = batches["buckets"]
    return [
        f"Worker micro-batches (from the worker's `job` events, field `batch_jobs`): "
        f"{batches['jobs']:,} jobs in ≈{batches['batches']:,} batches, "
        f"{batches['mean_per_batch']:.1f} jobs per batch on average, largest "
        f"{batches['max']}; a job's batch had {batches['job_weighted_mean']:.1f} jobs on "
        "average.",
        "",
        *table(
            [
                "batch_jobs",
                *(
                    f"{lo}" if lo == hi else (f"{lo}-{hi}" if hi < 10**9 else f"≥{lo}")
                    for lo, hi, _ in buckets
                ),
            ],
            "l" + "r" * len(buckets),
            [["jobs", *(f"{c:,}" for *_, c in buckets)]],
        ),
        "",
    ]
