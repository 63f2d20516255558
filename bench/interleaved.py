"""One connection per protocol, their requests taken in turns: latency ratios immune to drift.

A 5-second closed-loop run of each protocol after the other compares moments minutes apart on a
shared machine whose speed drifts by a third; at one connection (latency-bound) that drift is
larger than the differences measured. Here one client sends a v1 request, then a V2 binary one,
then a gRPC call, and so on, each on its own keep-alive connection, so every protocol sees the
same moments. The rate at one connection is 1 / mean latency. HTTP connections the gateway
closes (after ONNXQ_CLIENT_KEEPALIVE_REQUESTS) are reopened, the reconnect counted in the
next request's latency, as the closed-loop client counts it.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from bench.load_client import parse_response


class HttpConnection:
    def __init__(self, port: int, request: bytes):
        self.port, self.request = port, request
        self.sock: socket.socket | None = None

    def call(self) -> bool:
        if self.sock is None:
            self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(self.request)
        buffer = bytearray()
        while (parsed := parse_response(buffer)) is None:
            chunk = self.sock.recv(262144)
            if not chunk:
                raise ConnectionError("the gateway closed a connection mid-answer")
            buffer += chunk
        status, closes, _ = parsed
        if closes:
            self.sock.close()
            self.sock = None
        return status == 200


def take_turns(
    callers: dict[str, Callable[[], bool]], seconds: float, warmup: int = 100
) -> dict[str, np.ndarray]:
    """Each caller's latencies (s), calls made in turns for `seconds`; a failed call raises."""
    for _ in range(warmup):
        for name, call in callers.items():
            if not call():
                raise RuntimeError(f"{name}: a warm-up call failed")
    latencies: dict[str, list[float]] = {name: [] for name in callers}
    stop_at = time.perf_counter() + seconds
    while time.perf_counter() < stop_at:
        for name, call in callers.items():
            sent = time.perf_counter()
            if not call():
                raise RuntimeError(f"{name}: a call failed")
            latencies[name].append(time.perf_counter() - sent)
    return {name: np.asarray(values) for name, values in latencies.items()}


def render(results: dict[int, dict[str, np.ndarray]], baseline: str, seconds: float) -> list[str]:
    """The markdown table: per row count and protocol, rate, p50, p99 and the ratio to baseline."""
    lines = [
        "",
        f"One connection per protocol, requests in turns for {seconds:g} s per row count "
        "(bench/interleaved.py: every protocol sees the same moments of the machine):",
        "",
        "| rows | protocol | calls | req/s (1 / mean) | p50 ms | p99 ms | vs v1 (req/s) |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for rows, by_protocol in results.items():
        base = 1 / by_protocol[baseline].mean()
        for protocol, values in by_protocol.items():
            rate = 1 / values.mean()
            lines.append(
                f"| {rows} | {protocol} | {len(values):,} | {rate:,.0f} | "
                f"{np.percentile(values, 50) * 1000:.3f} | {np.percentile(values, 99) * 1000:.3f} "
                f"| {rate / base:.2f}x |"
            )
    return lines


def ratios(results: dict[int, dict[str, np.ndarray]], baseline: str) -> dict[Any, float]:
    """(rows, protocol) -> req/s against the baseline's, from the same turns."""
    return {
        (rows, protocol): float(by[baseline].mean() / values.mean())
        for rows, by in results.items()
        for protocol, values in by.items()
    }
