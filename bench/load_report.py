"""docs/benchmarks.md text for one bench/load.py run: ratios against the floor, then targets."""

from __future__ import annotations

import os
import statistics
from typing import Any

import numpy as np

from bench.report import frames, shares, table, verdict
from bench.report import ms_number as _ms


def _errors(result: Any) -> str:
    kinds = {**{str(s): n for s, n in result.statuses.items() if s >= 400}, **result.errors}
    detail = ", ".join(f"{k}: {n}" for k, n in sorted(kinds.items()))
    return f"{result.failed} ({result.error_share:.2%})" + (f" [{detail}]" if detail else "")


def _server_cpu_ms(run: Any) -> float:
    """CPU ms per answered request of the server's processes (client and noise left out)."""
    cores = os.cpu_count() or 1
    share = sum(v for k, v in run.cpu.items() if k != "client" and "noise" not in k)
    return share * cores * run.result.wall * 1000 / max(1, run.result.answered)


def _p50_95_99(result: Any) -> str:
    return " / ".join(_ms(result.pct(q)) for q in (50, 95, 99))


def _cpu(run: Any) -> str:
    return shares(run.cpu.items())


def rss_slope(samples: list[tuple[float, float]]) -> tuple[float, float, float, float]:
    """(first MiB, last MiB, max MiB, slope MiB/min after the first minute)."""
    if not samples:
        return (float("nan"),) * 4  # type: ignore[return-value]
    settled = [(t, m) for t, m in samples if t >= 60] or samples
    times = np.array([t for t, _ in settled])
    mib = np.array([m for _, m in settled])
    slope = float(np.polyfit(times, mib, 1)[0] * 60) if len(settled) > 2 else 0.0
    return samples[0][1], samples[-1][1], max(m for _, m in samples), slope


def render(report: dict[str, Any]) -> str:
    args, pairs, machine = report["args"], report["pairs"], report["machine"]
    lines: list[str] = []
    add = lines.append
    add(f"## Load test, run of {report['date']}")
    add("")
    add("```sh")
    add(
        f".venv/bin/python bench/load.py --duration {args.duration:g} --connections "
        f"{args.connections} --repeat {args.repeat} --soak {args.soak:g}"
    )
    add("```")
    add("")
    add(
        f"- machine: {machine['nproc']} cores ({machine['cpu']}), {machine['memory']}; load "
        f"average before the run {machine['load_before']} (shared with other people's builds "
        f"and test suites)"
    )
    add("- versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()))
    add(f"- code: {report['code']}; wall time {report['wall']:.0f} s")
    add(
        "- model: RandomForest-100 breast-cancer demo model, one row per request, "
        "intra_op_num_threads=1 everywhere"
    )
    add(
        "- floor: `bench/floor_app.py`, Flask + gunicorn 2 **sync** workers + onnxruntime, no "
        "validation, auth, logs or metrics; sync workers close the connection after each "
        "response, so the client reconnects for every floor request"
    )
    add(
        "- onnxq: gunicorn 2 gevent workers with an API key required, pydantic "
        "validation, the JSONL prediction log, one JSON log event per request and Prometheus "
        "metrics (multiprocess mode); `python -m worker` (prefork 2) and redis-server idle "
        "beside it during the sync runs"
    )
    add(
        f"- client: `bench/load_client.py`, {args.client_processes} processes x "
        f"{args.connections // args.client_processes} keep-alive sockets ({args.connections} "
        f"connections), closed loop (next request when the answer arrives), "
        f"{args.duration:g} s per run. It runs on the same 2 cores: its CPU share is in the "
        f"tables, and what it takes the servers cannot use."
    )
    add(
        "- /health: one more process GETs `/health` every 20 ms on its own connection during "
        "each onnxq run."
    )
    add("")
    add("### Sync predict: onnxq vs the floor, back to back")
    add("")
    rate_ratios = [o.result.rate / f.result.rate for f, o in pairs]
    p99_ratios = [o.result.pct(99) / f.result.pct(99) for f, o in pairs]
    lines += table(
        [
            "pair",
            "floor req/s",
            "onnxq req/s",
            "**req/s ratio**",
            "floor p50 / p95 / p99 ms",
            "onnxq p50 / p95 / p99 ms",
            "**p99 ratio**",
            "onnxq errors",
            "onnxq /health p99 ms",
            "load avg after",
        ],
        "rrrrllrlrl",
        (
            [
                n,
                f"{floor.result.rate:,.0f}",
                f"{onnxq.result.rate:,.0f}",
                f"**{rate_ratio:.2f}**",
                _p50_95_99(floor.result),
                _p50_95_99(onnxq.result),
                f"**{p99_ratio:.2f}**",
                _errors(onnxq.result),
                _ms(onnxq.result.pct(99, probe=True)),
                ", ".join(f"{x:.1f}" for x in onnxq.load),
            ]
            for n, ((floor, onnxq), rate_ratio, p99_ratio) in enumerate(
                zip(pairs, rate_ratios, p99_ratios, strict=True), 1
            )
        ),
    )
    add("")
    if report.get("variants"):
        add(
            "The same load on onnxq stacks started with other gunicorn flags (`--variant`), "
            "right after the pair's default run, against that pair's floor:"
        )
        add("")
        lines += table(
            [
                "pair",
                "variant",
                "req/s",
                "**req/s ratio**",
                "p50 / p95 / p99 ms",
                "**p99 ratio**",
                "errors",
                "/health p99 ms",
            ],
            "rlrrlrlr",
            (
                [
                    n + 1,
                    run.name,
                    f"{run.result.rate:,.0f}",
                    f"**{run.result.rate / pairs[n][0].result.rate:.2f}**",
                    _p50_95_99(run.result),
                    f"**{run.result.pct(99) / pairs[n][0].result.pct(99):.2f}**",
                    _errors(run.result),
                    _ms(run.result.pct(99, probe=True)),
                ]
                for n, run in report["variants"]
            ),
        )
        add("")
    singles = report["single_pairs"]
    p50_ratios = [o.result.pct(50) / f.result.pct(50) for f, o in singles]
    add(
        "One connection (one client process, closed loop), right after each pair: the latency "
        "of a request on its own, nothing queued before it."
    )
    add("")
    lines += table(
        [
            "pair",
            "floor req/s",
            "onnxq req/s",
            "floor p50 / p95 / p99 ms",
            "onnxq p50 / p95 / p99 ms",
            "**p50 ratio**",
        ],
        "rrrllr",
        (
            [
                n,
                f"{floor.result.rate:,.0f}",
                f"{onnxq.result.rate:,.0f}",
                _p50_95_99(floor.result),
                _p50_95_99(onnxq.result),
                f"**{ratio:.2f}**",
            ]
            for n, ((floor, onnxq), ratio) in enumerate(zip(singles, p50_ratios, strict=True), 1)
        ),
    )
    add("")
    add(
        "Share of the 2 cores used during each run, and the server's CPU per answered request "
        "(the number that decides req/s on a quiet machine, where the servers get every core):"
    )
    add("")
    for n, (floor, onnxq) in enumerate(pairs, 1):
        add(f"- pair {n}, floor: {_cpu(floor)}; **{_server_cpu_ms(floor):.2f} ms CPU/request**")
        add(
            f"- pair {n}, onnxq: {_cpu(onnxq)}; **{_server_cpu_ms(onnxq):.2f} ms CPU/request** "
            f"({_server_cpu_ms(onnxq) / _server_cpu_ms(floor):.2f} x the floor's)"
        )
    add("")
    rate_ratio, p99_ratio = statistics.median(rate_ratios), statistics.median(p99_ratios)
    best = max((onnxq for _, onnxq in pairs), key=lambda run: run.result.rate)
    saturated_p99 = statistics.median(onnxq.result.pct(99) for _, onnxq in pairs)
    health_p99 = statistics.median(onnxq.result.pct(99, probe=True) for _, onnxq in pairs)
    worst_errors = max(onnxq.result.error_share for _, onnxq in pairs)
    soak = report["soak"]
    add("### Targets")
    add("")
    cpu_ratio = statistics.median(_server_cpu_ms(o) / _server_cpu_ms(f) for f, o in pairs)
    targets: list[list[object]] = [
        [
            "onnxq req/s ≥ 0.8 x floor (median of pairs)",
            f"{rate_ratio:.2f} x",
            verdict(rate_ratio >= 0.8),
        ],
        [
            "onnxq p99 ≤ 1.5 x floor p99 (median of pairs)",
            f"{p99_ratio:.2f} x",
            verdict(p99_ratio <= 1.5),
        ],
        [
            "1 connection: onnxq p50 ≤ 1.5 x floor p50 (median of pairs)",
            f"{statistics.median(p50_ratios):.2f} x",
            verdict(statistics.median(p50_ratios) <= 1.5),
        ],
        [
            "every pair, 16 connections: onnxq req/s ≥ 0.7 x floor (worst pair)",
            f"{min(rate_ratios):.2f} x",
            verdict(min(rate_ratios) >= 0.7),
        ],
        [
            "(for scale, no target) onnxq ÷ floor req/s that CPU per request alone predicts "
            "for a quiet machine",
            f"{1 / cpu_ratio:.2f} x",
            "",
        ],
        [
            f"at saturation ({best.result.rate:,.0f} req/s best, errors ≤ {worst_errors:.2%}) "
            "p99 < 100 ms with < 1 % errors",
            f"{_ms(saturated_p99)} ms",
            verdict(saturated_p99 < 0.1 and worst_errors < 0.01),
        ],
        [
            "/health p99 < 50 ms while saturated",
            f"{_ms(health_p99)} ms",
            verdict(health_p99 < 0.05),
        ],
    ]
    if soak is not None:
        first, last, peak, slope = rss_slope(soak.rss)
        kept_up = soak.result.rate >= 0.98 * soak.rate
        targets += [
            [
                f"soak {soak.result.wall:.0f} s offered {soak.rate:,.0f} req/s "
                f"({args.soak_share:.0%} of the median max): 0 errors, and every offered request "
                "answered (≥ 98 % of the offered rate)",
                f"{_errors(soak.result)}; {soak.result.rate:,.0f} req/s answered",
                verdict(soak.result.failed == 0 and kept_up),
            ],
            [
                "soak: flat memory (RSS of gateway + worker processes)",
                f"{first:,.1f} → {last:,.1f} MiB (max {peak:,.1f}), {slope:+.2f} MiB/min after "
                "the first minute",
                verdict(abs(slope) < 1.0),
            ],
            [
                "(no target) soak p99, open loop, from when each request was due",
                f"{_ms(soak.result.pct(99))} ms",
                "",
            ],
        ]
    lines += table(["target", "measured", ""], "lrl", targets)
    add("")
    if soak is not None:
        r = soak.result
        add(
            f"Soak, open loop (latency from when each request was due): {r.rate:,.0f} req/s "
            f"answered, p50 / p95 / p99 {_ms(r.pct(50))} / {_ms(r.pct(95))} / "
            f"{_ms(r.pct(99))} ms; /health p99 {_ms(r.pct(99, probe=True))} ms "
            f"({r.probe_failures} probe failures); RSS samples every 5 s: "
            + ", ".join(f"{m:,.1f}" for _, m in soak.rss[:: max(1, len(soak.rss) // 12)])
            + " MiB."
        )
        add("")
    add(
        f"Cross-check: over the whole run the gateway's own `/metrics` counted "
        f"{report['gateway_requests']:,.0f} sync predicts answered 200 "
        f"(`onnxq_http_requests_total`, summed over both gunicorn workers)."
    )
    add("")
    if report.get("profile") is not None:
        lines += render_profile(report["profile"])
    s = report["submits"].result
    add(f"### Job submits ({args.connections} connections, {args.duration:g} s, closed loop)")
    add("")
    add(
        f"{s.rate:,.0f} submits/s answered ({s.statuses.get(202, 0):,} accepted with 202), "
        f"p50 / p95 / p99 {_ms(s.pct(50))} / {_ms(s.pct(95))} / {_ms(s.pct(99))} ms, errors "
        f"{_errors(s)}; /health p99 meanwhile {_ms(s.pct(99, probe=True))} ms. The worker "
        f"finished all {report['accepted']:,} jobs {report['drain_seconds']:.1f} s after the "
        f"submits stopped (counted from its own `/metrics`: "
        f"`onnxq_jobs_succeeded_total`). CPU: {_cpu(report['submits'])}."
    )
    return "\n".join(lines) + "\n"


def render_profile(profile: Any) -> list[str]:
    return [
        f"### Where a gateway worker's time goes (py-spy, {profile.samples:,} samples)",
        "",
        "Innermost frame (self), share of samples:",
        "",
        *table(["frame", "file", "share"], "llr", frames(profile.self_top, numbered=False)),
        "",
        "onnxq frames anywhere on the stack (inclusive):",
        "",
        *table(
            ["frame", "file", "share"], "llr", frames(profile.project_inclusive, numbered=False)
        ),
        "",
        f"By package (self): {shares(profile.by_package)}.",
        "",
    ]
