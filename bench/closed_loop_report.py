"""The text bench/closed_loop.py writes into its section of docs/benchmarks.md."""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Any

from bench.closed_loop_phase import Phase
from bench.meters import pct
from bench.report import count, table, verdict

GROUPS = ["gateway", "worker main", "worker children", "redis-server", "client"]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms"


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _noise(*phases: Phase) -> str:
    return " / ".join(f"{p.noise:.0%}" for p in phases)


def _self_cpu(phase: Phase) -> float:
    return phase.client_cpu * 1000 / max(1, len(phase.ok))


def _errors(pairs: list[dict[str, dict[str, Phase]]]) -> list[str]:
    lines = []
    for n, pair in enumerate(pairs, 1):
        for side, phases in pair.items():
            for name, phase in phases.items():
                failed = len(phase.jobs) - len(phase.ok) + len(phase.errors)
                if failed:
                    sample = (phase.errors or ["a job did not succeed"])[0]
                    lines.append(f"- pair {n}, {side} {name}: {failed} failed; e.g. `{sample}`")
    return lines


def closed_section(pairs: list[dict[str, dict[str, Phase]]], args: dict[str, Any]) -> list[str]:
    rows, rate_ratios, p50_ratios = [], [], []
    for n, pair in enumerate(pairs, 1):
        o, b = pair["onnxq"]["closed"], pair["bare"]["closed"]
        rate_ratios.append(o.rate / b.rate)
        p50_ratios.append(o.latency(50) / b.latency(50))
        rows.append(
            [
                n,
                count(o.rate),
                count(b.rate),
                f"**{rate_ratios[-1]:.2f}**",
                _ms(o.latency(50)),
                _ms(b.latency(50)),
                f"**{p50_ratios[-1]:.2f}**",
                _ms(o.latency(99)),
                _ms(b.latency(99)),
                _noise(o, b),
            ]
        )
    med = {
        key: _median([getattr(p[side]["closed"], attr)(*a) for p in pairs])
        for key, side, attr, a in [
            ("o50", "onnxq", "latency", (50,)),
            ("b50", "bare", "latency", (50,)),
            ("o99", "onnxq", "latency", (99,)),
            ("b99", "bare", "latency", (99,)),
        ]
    }
    o_rate = _median([p["onnxq"]["closed"].rate for p in pairs])
    b_rate = _median([p["bare"]["closed"].rate for p in pairs])
    rate_ratio, p50_ratio = _median(rate_ratios), _median(p50_ratios)
    rows.append(
        [
            "**median**",
            count(o_rate),
            count(b_rate),
            f"**{rate_ratio:.2f}**",
            _ms(med["o50"]),
            _ms(med["b50"]),
            f"**{p50_ratio:.2f}**",
            _ms(med["o99"]),
            _ms(med["b99"]),
            "",
        ]
    )
    header = [
        "pair",
        "onnxq jobs/s",
        "bare jobs/s",
        "**onnxq ÷ bare jobs/s**",
        "onnxq p50",
        "bare p50",
        "**onnxq ÷ bare p50**",
        "onnxq p99",
        "bare p99",
        "noise (onnxq / bare)",
    ]
    return [
        f"### 1. Closed loop: {args['clients']} clients, {args['seconds']:g} s per side per pair",
        "",
        "Jobs/s counts the jobs answered inside the window; latency is submit → result in the "
        'client\'s hand; "noise" is the share of the 2 cores that other processes on this shared '
        "machine used meanwhile. The median row is the median of each column; the ratios' median "
        "is of the pairs' ratios.",
        "",
        *table(header, "rrrrrrrrrl", rows),
        "",
        f"- onnxq ≥ 2 x bare Celery jobs/s: median ratio {rate_ratio:.2f} → "
        f"{verdict(rate_ratio >= 2)}",
        f"- onnxq p50 ≤ bare Celery p50: median ratio {p50_ratio:.2f} → {verdict(p50_ratio <= 1)}",
    ]


def burst_section(pairs: list[dict[str, dict[str, Phase]]], args: dict[str, Any]) -> list[str]:
    rows, ratios = [], []
    for n, pair in enumerate(pairs, 1):
        o, b = pair["onnxq"]["burst"], pair["bare"]["burst"]
        ratios.append(o.rate / b.rate)
        rows.append(
            [
                n,
                count(o.rate),
                count(b.rate),
                f"**{ratios[-1]:.2f}**",
                _ms(o.latency(50)),
                _ms(b.latency(50)),
                _noise(o, b),
            ]
        )
    ratio = _median(ratios)
    rows.append(["**median**", "", "", f"**{ratio:.2f}**", "", "", ""])
    header = [
        "pair",
        "onnxq jobs/s",
        "bare jobs/s",
        "**onnxq ÷ bare**",
        "onnxq p50",
        "bare p50",
        "noise (onnxq / bare)",
    ]
    if args.get("burst_collect", "each") == "many":
        collect = (
            "up to 100 at a time, as each side's API offers (onnxq "
            "`GET /v1/jobs?ids=<id>,...&wait=30`, bare `ResultSet(...).join_native()`)"
        )
    else:
        collect = "one by one (onnxq `GET /v1/jobs/<id>?wait=30`, bare `get()`)"
    return [
        f"### 2. Open-loop burst: {args['burst_jobs']:,} single-row jobs",
        "",
        f"The same {args['clients']} client processes submit {args['burst_jobs']:,} jobs in all "
        f"(onnxq without `Prefer`, bare Celery `delay`), then collect every result {collect}; "
        "jobs/s = jobs ÷ (go → last result in a client's hand).",
        "",
        *table(header, "rrrrrrl", rows),
        "",
        f"- onnxq ≥ 2 x bare Celery: median ratio {ratio:.2f} → {verdict(ratio >= 2)}",
    ]


def waiting_section(pairs: list[dict[str, dict[str, Phase]]], load: str) -> list[str]:
    rows, idle_p50 = [], []
    for n, pair in enumerate(pairs, 1):
        for name, label in [("closed", "closed loop"), ("idle", "one client alone")]:
            phase = pair["onnxq"].get(name)
            if phase is None:
                continue
            lag = phase.answer_after_finish()
            if name == "idle":
                idle_p50.append(pct(lag, 50))
            rows.append(
                [
                    n,
                    label,
                    count(len(lag)),
                    f"{1 - phase.polled_share():.1%}",
                    _ms(pct(lag, 50)),
                    _ms(pct(lag, 99)),
                ]
            )
    lines = [
        "### 3. Waiting polls: job's `finished_at` → the answer in the client's hand (onnxq)",
        "",
        "Both clocks are this machine's wall clock (the worker stamps `finished_at`). \"Ended in "
        'the submit" is the share of jobs whose `Prefer: wait=30` submit already carried the '
        "result; the others were answered by `GET /v1/jobs/<id>?wait=30`.",
        "",
        *table(["pair", "phase", "jobs", "ended in the submit", "p50", "p99"], "rlrrrr", rows),
        "",
    ]
    if idle_p50:
        med = _median(idle_p50)
        lines.append(
            f"- ≤ 5 ms median on an idle machine: one client alone, median of the pairs' p50 "
            f"{_ms(med)} → {verdict(med <= 0.005)} (the machine was not idle: load average {load})"
        )
    return lines


def cpu_section(pairs: list[dict[str, dict[str, Phase]]]) -> list[str]:
    per = {side: [p[side]["closed"].cpu_ms_per_job() for p in pairs] for side in ("onnxq", "bare")}
    med = {side: {g: _median([c.get(g, 0.0) for c in per[side]]) for g in GROUPS} for side in per}
    total = {side: sum(med[side].values()) for side in med}
    rows = []
    for group in GROUPS:
        o, b = med["onnxq"][group], med["bare"][group]
        rows.append([group, f"{o:.2f}", f"{b:.2f}" if group != "gateway" else "—", f"{o - b:+.2f}"])
    rows.append(
        [
            "**all**",
            f"**{total['onnxq']:.2f}**",
            f"**{total['bare']:.2f}**",
            f"**{total['onnxq'] - total['bare']:+.2f}**",
        ]
    )
    over = sorted(GROUPS, key=lambda g: med["bare"][g] - med["onnxq"][g])
    redis = []
    for side in ("onnxq", "bare"):
        phase = pairs[0][side]["closed"]
        calls: Counter[str] = phase.meter.redis_calls
        n = max(1, len(phase.ok))
        top = ", ".join(f"{name.upper()} {c / n:.1f}" for name, c in calls.most_common(8) if c > 0)
        redis.append([side, f"{sum(v for v in calls.values() if v > 0) / n:.1f}", top])
    return [
        "### 4. CPU per job by process group (closed loop; median of the pairs, ms)",
        "",
        "Every process group from /proc (psutil) over the phase, the client processes too. The "
        "bare Celery column is the floor each onnxq component is compared against.",
        "",
        *table(["process group", "onnxq ms/job", "bare ms/job", "onnxq - bare"], "lrrr", rows),
        "",
        "Over the floor, largest first: "
        + ", ".join(f"{g} {med['onnxq'][g] - med['bare'][g]:+.2f} ms" for g in over)
        + f"; onnxq ÷ bare in all {total['onnxq'] / total['bare']:.2f}.",
        "",
        "The clients' own count (getrusage from go to their last answer, median of the pairs): "
        + ", ".join(
            f"{side} {_median([_self_cpu(p[side]['closed']) for p in pairs]):.2f} ms/job"
            for side in ("onnxq", "bare")
        )
        + "; noise "
        + ", ".join(
            f"{side} {_median([p[side]['closed'].noise for p in pairs]):.0%}"
            for side in ("onnxq", "bare")
        )
        + " of the 2 cores.",
        "",
        "Redis commands per job (pair 1, `INFO commandstats`):",
        "",
        *table(["side", "commands / job", "the most frequent, per job"], "lrl", redis),
    ]


def render(results: dict[str, Any]) -> str:
    m, args, pairs = results["machine"], results["args"], results["pairs"]
    versions = ", ".join(f"{k} {v}" for k, v in results["versions"].items())
    lines = [
        f"## Closed loop, run of {results['date']}",
        "",
        "```sh",
        results["command"],
        "```",
        "",
        f"- machine: {m['nproc']} cores ({m['cpu']}), {m['memory']}, Linux {m['kernel']}; load "
        f"average before the run {m['load_before']}, after {results['load_after']} (shared)",
        f"- versions: {versions}",
        f"- code: {results['git']}",
        f"- wall time of the whole script: {results['script_seconds']:.0f} s; "
        f"{len(pairs)} alternating pairs (onnxq, then bare Celery)",
        "- model: the RandomForest-100 breast-cancer demo model (30 float32 features); every "
        "session intra_op_num_threads=1; one redis-server (AOF everysec) for both sides",
        "- onnxq: gunicorn gateway, 2 gevent workers, and `python -m worker` (prefork 2), shipped "
        "defaults; bare Celery: bench/bare_celery.py, prefork 2, Redis broker and result "
        "backend, `acks_late`, prefetch multiplier 1",
        f"- clients: {args['clients']} OS processes per side (bench/closed_loop_client.py), one "
        "job at a time each; onnxq: one keep-alive `http.client` connection, `Prefer: wait=30` "
        "on the submit, then `GET /v1/jobs/<id>?wait=30` until ended; bare: `delay(row).get()`",
        "",
        *_errors(pairs),
        "",
        *closed_section(pairs, args),
        "",
        *burst_section(pairs, args),
        "",
        *waiting_section(pairs, results["load_after"]),
        "",
        *cpu_section(pairs),
    ]
    return "\n".join(lines)
