"""docs/benchmarks.md text for one bench/load.py run: ratios against the floor, then targets."""

from __future__ import annotations

import os
import statistics
from datetime import UTC, datetime
from typing import Any

import numpy as np


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f}"


def _verdict(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def _errors(result: Any) -> str:
    kinds = {**{str(s): n for s, n in result.statuses.items() if s >= 400}, **result.errors}
    detail = ", ".join(f"{k}: {n}" for k, n in sorted(kinds.items()))
    return f"{result.failed} ({result.error_share:.2%})" + (f" [{detail}]" if detail else "")


def _server_cpu_ms(run: Any) -> float:
    """CPU ms per answered request of the server's processes (client and noise left out)."""
    cores = os.cpu_count() or 1
    share = sum(v for k, v in run.cpu.items() if k != "client" and "noise" not in k)
    return share * cores * run.result.wall * 1000 / max(1, run.result.answered)


def _cpu(run: Any) -> str:
    return ", ".join(f"{group} {share:.0%}" for group, share in run.cpu.items())


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
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    add(f"## Load test, run of {when}")
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
        "- onnxq: gunicorn 2 gthread workers x 4 threads with an API key required, pydantic "
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
    add(
        "| pair | floor req/s | onnxq req/s | **req/s ratio** | floor p50 / p95 / p99 ms | "
        "onnxq p50 / p95 / p99 ms | **p99 ratio** | onnxq errors | onnxq /health p99 ms | "
        "load avg after |"
    )
    add("|---:|---:|---:|---:|---|---|---:|---|---:|---|")
    rate_ratios, p99_ratios = [], []
    for n, (floor, onnxq) in enumerate(pairs, 1):
        f, o = floor.result, onnxq.result
        rate_ratio, p99_ratio = o.rate / f.rate, o.pct(99) / f.pct(99)
        rate_ratios.append(rate_ratio)
        p99_ratios.append(p99_ratio)
        add(
            f"| {n} | {f.rate:,.0f} | {o.rate:,.0f} | **{rate_ratio:.2f}** | "
            f"{_ms(f.pct(50))} / {_ms(f.pct(95))} / {_ms(f.pct(99))} | "
            f"{_ms(o.pct(50))} / {_ms(o.pct(95))} / {_ms(o.pct(99))} | **{p99_ratio:.2f}** | "
            f"{_errors(o)} | {_ms(o.pct(99, probe=True))} | "
            f"{', '.join(f'{x:.1f}' for x in onnxq.load)} |"
        )
    add("")
    if report.get("variants"):
        add(
            "The same load on onnxq stacks started with other gunicorn flags (`--variant`), "
            "right after the pair's default run, against that pair's floor:"
        )
        add("")
        add(
            "| pair | variant | req/s | **req/s ratio** | p50 / p95 / p99 ms | **p99 ratio** | "
            "errors | /health p99 ms |"
        )
        add("|---:|---|---:|---:|---|---:|---|---:|")
        for n, run in report["variants"]:
            f, o = pairs[n][0].result, run.result
            add(
                f"| {n + 1} | {run.name} | {o.rate:,.0f} | **{o.rate / f.rate:.2f}** | "
                f"{_ms(o.pct(50))} / {_ms(o.pct(95))} / {_ms(o.pct(99))} | "
                f"**{o.pct(99) / f.pct(99):.2f}** | {_errors(o)} | "
                f"{_ms(o.pct(99, probe=True))} |"
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
    add("| target | measured | |")
    add("|---|---:|---|")
    add(
        f"| onnxq req/s ≥ 0.8 x floor (median of pairs) | {rate_ratio:.2f} x | "
        f"{_verdict(rate_ratio >= 0.8)} |"
    )
    add(
        f"| onnxq p99 ≤ 1.5 x floor p99 (median of pairs) | {p99_ratio:.2f} x | "
        f"{_verdict(p99_ratio <= 1.5)} |"
    )
    cpu_ratio = statistics.median(_server_cpu_ms(o) / _server_cpu_ms(f) for f, o in pairs)
    add(
        f"| (for scale, no target) onnxq ÷ floor req/s that CPU per request alone predicts "
        f"for a quiet machine | {1 / cpu_ratio:.2f} x | |"
    )
    add(
        f"| at saturation ({best.result.rate:,.0f} req/s best, errors ≤ {worst_errors:.2%}) "
        f"p99 < 100 ms with < 1 % errors | {_ms(saturated_p99)} ms | "
        f"{_verdict(saturated_p99 < 0.1 and worst_errors < 0.01)} |"
    )
    add(
        f"| /health p99 < 50 ms while saturated | {_ms(health_p99)} ms | "
        f"{_verdict(health_p99 < 0.05)} |"
    )
    if soak is not None:
        first, last, peak, slope = rss_slope(soak.rss)
        flat = abs(slope) < 1.0
        kept_up = soak.result.rate >= 0.98 * soak.rate
        add(
            f"| soak {soak.result.wall:.0f} s offered {soak.rate:,.0f} req/s "
            f"({args.soak_share:.0%} of the median max): 0 errors, and every offered request "
            f"answered (≥ 98 % of the offered rate) | {_errors(soak.result)}; "
            f"{soak.result.rate:,.0f} req/s answered | "
            f"{_verdict(soak.result.failed == 0 and kept_up)} |"
        )
        add(
            f"| soak: flat memory (RSS of gateway + worker processes) | {first:,.1f} → "
            f"{last:,.1f} MiB (max {peak:,.1f}), {slope:+.2f} MiB/min after the first minute | "
            f"{_verdict(flat)} |"
        )
        add(
            f"| (no target) soak p99, open loop, from when each request was due | "
            f"{_ms(soak.result.pct(99))} ms | |"
        )
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
    lines = [f"### Where a gateway worker's time goes (py-spy, {profile.samples:,} samples)", ""]
    lines.append("Innermost frame (self), share of samples:")
    lines.append("")
    lines.append("| frame | file | share |")
    lines.append("|---|---|---:|")
    lines += [f"| `{name}` | {path} | {share:.1%} |" for name, path, share in profile.self_top]
    lines += ["", "onnxq frames anywhere on the stack (inclusive):", ""]
    lines += ["| frame | file | share |", "|---|---|---:|"]
    lines += [
        f"| `{name}` | {path} | {share:.1%} |" for name, path, share in profile.project_inclusive
    ]
    lines += [
        "",
        "By package (self): "
        + ", ".join(f"{package} {share:.0%}" for package, share in profile.by_package)
        + ".",
        "",
    ]
    return lines
