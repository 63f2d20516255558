"""bench/throughput.py's section of docs/benchmarks.md, continued: section 2 (the large job),
section 3 (the py-spy profiles) and section 4 (the reading generated from the numbers)."""

from __future__ import annotations

import os
import statistics
from typing import Any

from bench.job_client import PhaseResult
from bench.meters import CpuMeter
from bench.pyspy import PROFILE_RATE, Profile
from bench.report import count, frames, shares, table, verdict

LARGE_STEPS = [
    ("submit: POST → 202 (HTTP + validation + enqueue)", "submit_http"),
    ("  of which: body read, parsed and validated (→ `submitted_at`)", "validate"),
    ("  of which: job record + Celery message + 202 (`submitted_at` → 202)", "enqueue"),
    ("queued: `submitted_at` → `started_at`", "queued"),
    ("running: `started_at` → `finished_at`", "running"),
    ("result stored and seen by a poll: `finished_at` → last poll sent", "store_and_detect"),
    ("fetch the result: last GET", "fetch"),
]


def large_job_section(results: dict[str, Any]) -> list[str]:
    large, rows, raw_times = results["large"], results["rows"], results["raw_bulk"]
    raw_median = statistics.median(raw_times)
    onnxq_rate, raw_rate = rows / large["total"], rows / raw_median
    ratio = onnxq_rate / raw_rate
    floor = results["json_floor"]
    orjson = f", `orjson.loads` {floor['orjson_loads']:.3f} s" if "orjson_loads" in floor else ""
    return [
        f"### 2. One {rows:,}-row job through onnxq vs raw onnxruntime on the same rows",
        "",
        f"onnxq: submit (a {results['body_mb']:.1f} MB JSON body, serialised before the clock "
        "starts) → poll every 20 ms → the response with the result received. Raw: "
        "`session.run` on the whole float32 matrix in this process (median of "
        f"{len(raw_times)}: " + ", ".join(f"{t:.3f} s" for t in raw_times) + "), run right after.",
        "",
        *table(
            ["", "seconds", "rows/s"],
            "lrr",
            [
                ["onnxq, submit → result received", f"{large['total']:.2f}", count(onnxq_rate)],
                ["raw onnxruntime `session.run`", f"{raw_median:.3f}", count(raw_rate)],
                ["**onnxq ÷ raw**", "", f"**{ratio:.3f}**"],
            ],
        ),
        "",
        f"Target onnxq ÷ raw ≥ 0.5: {ratio:.3f} → {verdict(ratio >= 0.5)}.",
        "",
        "For scale, in this process on the same body: `json.loads` "
        f"{floor['json_loads']:.3f} s{orjson}, the list → float32 matrix "
        f"{floor['to_matrix']:.3f} s: parsing the JSON request once already takes "
        f"{floor['json_loads'] / raw_median:.1f}x as long as the inference.",
        "",
        "Where the onnxq time goes (client clock for HTTP, the job document's timestamps for the "
        "rest; same machine clock):",
        "",
        *table(
            ["step", "seconds", "share"],
            "lrr",
            [
                *(
                    [label, f"{large[key]:.3f}", f"{large[key] / large['total']:.0%}"]
                    for label, key in LARGE_STEPS
                ),
                ["**total**", f"**{large['total']:.3f}**", ""],
            ],
        ),
        "",
        f"(`queued` overlaps the end of `submit`: the worker can start before the 202 is "
        f"received. The result response was {large['response_bytes'] / 2**20:.1f} MB; the client "
        f"took another {large['client_parse']:.3f} s to parse it, not counted above.)",
        "",
    ]


def profile_section(results: dict[str, Any]) -> list[str]:
    prof = results["profile_single"]
    onnxq: PhaseResult = results["onnxq"]
    meter: CpuMeter = prof["cpu"]
    jobs = max(prof["jobs"], 1)
    lines = [
        "### 3. Profiles (py-spy)",
        "",
        f"Single-row load, a separate run right after the measured one: "
        f"{results['profile_seconds']:g} s of "
        f"`py-spy record --rate {PROFILE_RATE} --nonblocking --format raw` on each gunicorn "
        "worker, "
        "each Celery prefork child and the Celery main process, under the same client load "
        f"({count(prof['rate'])} jobs/s under the profiler vs {count(onnxq.rate_client)} "
        "without). Shares are of the samples in which a thread was running *or runnable* (py-spy "
        "skips threads blocked in a system call), summed over the processes of a group. With "
        "~10 busy threads on 2 cores a thread woken by I/O often waits for a core, and that wait "
        "is charged to the frame that did the I/O: frames like `_read_from_socket` (a Redis "
        "reply), `write`/`PollableMethodQueue.defer` (gunicorn) or `_worker`/`select` measure "
        '*round trips and thread hand-offs*, not only CPU. "Self" is the innermost Python '
        'frame (C code such as `session.run` counts for its Python caller); "inclusive" counts '
        "every sample with that frame anywhere on the stack.",
        "",
        "CPU busy during the profile window (from /proc):",
        "",
        *table(
            ["process group", "CPU ms / job", "share of machine"],
            "lrr",
            [
                *(
                    [name, f"{used * 1000 / jobs:.2f}", f"{used / meter.capacity:.0%}"]
                    for name, used in meter.used.items()
                ),
                [
                    "other processes on the machine (noise)",
                    f"{meter.other * 1000 / jobs:.2f}",
                    f"{meter.other / meter.capacity:.0%}",
                ],
            ],
        ),
        "",
    ]
    for profile in prof["profiles"]:
        lines += profile_tables(profile)
    if results.get("profile_large"):
        lines += [
            f"Profile of a second {results['rows']:,}-row job (py-spy from submit until the "
            f"result was fetched, {results['profile_large_seconds']:.1f} s):",
            "",
        ]
        for profile in results["profile_large"]:
            lines += profile_tables(profile)
    return lines


def profile_tables(profile: Profile) -> list[str]:
    lines = [
        f"#### {profile.label}",
        "",
        f"{profile.samples:,} samples ("
        + ", ".join(f"{k}: {v:,}" for k, v in profile.per_process.items())
        + ").",
        "",
    ]
    if not profile.samples:
        return lines
    lines += table(
        ["#", "self: function", "file", "share"], "rllr", frames(profile.self_top, numbered=True)
    )
    lines.append("")
    if profile.project_inclusive:
        lines += table(
            ["#", "inclusive, this repo's code: function", "file", "share"],
            "rllr",
            frames(profile.project_inclusive, numbered=True),
        )
    else:
        lines.append("(None of this repo's functions runs in this process beyond its entry point.)")
    return [*lines, "", f"Self time by package: {shares(profile.by_package)}.", ""]


def reading_section(results: dict[str, Any]) -> list[str]:
    return [
        "### 4. Reading (generated from the numbers above)",
        "",
        *(f"- {point}" for point in results["reading"]),
        "",
    ]


def reading(results: dict[str, Any]) -> list[str]:
    bare: PhaseResult = results["bare"]
    onnxq: PhaseResult = results["onnxq"]
    points = []
    ratio = statistics.median(
        p["onnxq"].rate_available / p["bare"].rate_available for p in results["pairs"]
    )
    b_cpu, o_cpu = bare.cpu_ms_per_job(), onnxq.cpu_ms_per_job()
    points.append(
        f"Single-row throughput: onnxq {ratio:.2f} x bare Celery (median of "
        f"{len(results['pairs'])} pairs; target 2 x). Both runs are bound "
        f"by CPU on {os.cpu_count()} cores: every job costs {sum(b_cpu.values()):.2f} ms of CPU "
        f"in the bare system and {sum(o_cpu.values()):.2f} ms in onnxq, all processes and the "
        "client included."
    )
    heaviest = max(o_cpu.items(), key=lambda kv: kv[1])
    points.append(
        f"In onnxq the largest CPU consumer per job is {heaviest[0]} at {heaviest[1]:.2f} ms/job "
        f"({heaviest[1] / sum(o_cpu.values()):.0%} of onnxq's CPU); in bare Celery it is "
        + "{} at {:.2f} ms/job.".format(*max(b_cpu.items(), key=lambda kv: kv[1]))
    )
    if results["batches"]:
        points.append(
            f"The worker ran {results['batches']['mean_per_batch']:.1f} jobs per session.run on "
            "average. ONNX Runtime is a negligible share either way (one row costs "
            f"{results['raw_single']['per_call_s'] * 1e6:.0f} µs); what a job costs is the Python "
            "and Redis bookkeeping around it, which batching shares only in part (see the worker "
            "profile)."
        )
    large = results["large"]
    biggest = max(
        ["submit_http", "queued", "running", "store_and_detect", "fetch"], key=lambda k: large[k]
    )
    points.append(
        f"The {results['rows']:,}-row job: the largest step is `{biggest}` "
        f"({large[biggest]:.2f} s of {large['total']:.2f} s); raw session.run needs "
        f"{statistics.median(results['raw_bulk']):.2f} s for the same rows."
    )
    for profile in results["profile_single"]["profiles"]:
        if profile.project_inclusive:
            top = ", ".join(f"`{n}` {s:.0%}" for n, _, s in profile.project_inclusive[:4])
            points.append(f"{profile.label}: heaviest of this repo's functions (inclusive): {top}.")
    return points
