"""A lean HTTP/1.1 load generator: a few processes, each driving many sockets with `selectors`.

Every request is prebuilt bytes; a response is parsed only as far as its status, its
Content-Length and whether the server closes the connection (gunicorn's sync workers
do after every response: the client then reconnects, as any client would). Per request
this costs tens of microseconds of client CPU, measured and reported, because the client
shares the machine's cores with the server it measures.

Two modes per connection:
- closed loop (rate None): send the next request as soon as the answer arrives;
- open loop (rate r): request k of a connection is due at start + k / r; latency counts
  from when it was due, so a stalled server cannot hide its backlog (no coordinated
  omission).
"""

from __future__ import annotations

import http.client
import multiprocessing as mp
import selectors
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

HEADER_END = b"\r\n\r\n"


def build_request(
    method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body or method == "POST":
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class Connection:
    port: int
    sock: socket.socket | None = None
    buffer: bytearray = field(default_factory=bytearray)
    sent_at: float = 0.0  # when the request was due (open loop) or sent (closed loop)
    busy: bool = False
    next_due: float = 0.0
    serial: int = 0

    def open(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        self.sock = sock
        self.buffer.clear()
        return sock


def parse_response(buffer: bytearray) -> tuple[int, bool, int] | None:
    """(status, server closes, bytes used) once a whole response is in `buffer`."""
    end = buffer.find(HEADER_END)
    if end < 0:
        return None
    head = bytes(buffer[:end]).lower()
    status = int(head[9:12])
    length = 0
    closes = False
    for line in head.split(b"\r\n")[1:]:
        if line.startswith(b"content-length:"):
            length = int(line[15:])
        elif line.startswith(b"connection:") and b"close" in line:
            closes = True
    total = end + 4 + length
    return (status, closes, total) if len(buffer) >= total else None


def drive(
    port: int,
    requests: list[bytes],
    connections: int,
    duration: float,
    rate: float | None,
    start_at: float,
    queue: mp.Queue,
) -> None:
    """Run `connections` sockets until `duration` has passed; put the results on `queue`."""
    cpu_started = time.process_time()
    selector = selectors.DefaultSelector()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors: dict[str, int] = {}
    interval = connections / rate if rate else 0.0
    conns = [Connection(port) for _ in range(connections)]
    while time.time() < start_at:
        time.sleep(0.001)
    started = time.perf_counter()
    stop_at = started + duration
    for offset, conn in enumerate(conns):
        conn.next_due = started + offset * interval / connections
        conn.serial = offset

    def send(conn: Connection, now: float) -> None:
        if conn.sock is None:
            selector.register(conn.open(), selectors.EVENT_READ, conn)
        assert conn.sock is not None
        payload = requests[conn.serial % len(requests)]
        conn.serial += connections
        conn.sent_at = conn.next_due if rate else now
        conn.busy = True
        conn.sock.sendall(payload)  # small bodies: fits in the socket buffer at once

    def fail(conn: Connection, kind: str) -> None:
        errors[kind] = errors.get(kind, 0) + 1
        drop(conn)

    def drop(conn: Connection) -> None:
        if conn.sock is not None:
            selector.unregister(conn.sock)
            conn.sock.close()
            conn.sock = None
        conn.busy = False

    while True:
        now = time.perf_counter()
        if now >= stop_at:
            break
        for conn in conns:
            if not conn.busy and (not rate or conn.next_due <= now):
                try:
                    send(conn, now)
                except OSError as exc:
                    fail(conn, type(exc).__name__)
        waits = [c.next_due - now for c in conns if not c.busy and rate]
        timeout = max(0.0, min([*waits, stop_at - now, 0.05]))
        for key, _ in selector.select(timeout):
            conn = key.data
            try:
                chunk = conn.sock.recv(65536)
            except OSError as exc:
                fail(conn, type(exc).__name__)
                continue
            if not chunk:
                fail(conn, "connection_closed")
                continue
            conn.buffer += chunk
            parsed = parse_response(conn.buffer)
            if parsed is None:
                continue
            status, closes, used = parsed
            done = time.perf_counter()
            latencies.append(done - conn.sent_at)
            statuses[status] = statuses.get(status, 0) + 1
            del conn.buffer[:used]
            conn.busy = False
            conn.next_due += interval
            if closes:
                drop(conn)
    for conn in conns:  # requests still in flight when time is up are neither counted nor failed
        drop(conn)
    queue.put(
        {
            "latencies": np.asarray(latencies, dtype=np.float64).tobytes(),
            "statuses": statuses,
            "errors": errors,
            "cpu": time.process_time() - cpu_started,
            "wall": time.perf_counter() - started,
        }
    )


def probe(
    port: int, path: str, every: float, duration: float, start_at: float, queue: mp.Queue
) -> None:
    """GET `path` every `every` seconds on one keep-alive connection; latencies to `queue`."""
    latencies: list[float] = []
    failures = 0
    while time.time() < start_at:
        time.sleep(0.001)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    stop_at = time.perf_counter() + duration
    while time.perf_counter() < stop_at:
        sent = time.perf_counter()
        try:
            connection.request("GET", path)
            answer = connection.getresponse()
            answer.read()
            if answer.status != 200:
                failures += 1
            latencies.append(time.perf_counter() - sent)
        except (OSError, http.client.HTTPException):
            failures += 1
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        time.sleep(max(0.0, every - (time.perf_counter() - sent)))
    connection.close()
    queue.put({"latencies": np.asarray(latencies).tobytes(), "failures": failures})


@dataclass
class LoadResult:
    latencies: np.ndarray
    statuses: dict[int, int]
    errors: dict[str, int]
    wall: float
    client_cpu: float
    probe_latencies: np.ndarray | None = None
    probe_failures: int = 0

    @property
    def answered(self) -> int:
        return int(sum(self.statuses.values()))

    @property
    def failed(self) -> int:
        bad = sum(n for status, n in self.statuses.items() if status >= 400)
        return int(bad + sum(self.errors.values()))

    @property
    def rate(self) -> float:
        return self.answered / self.wall if self.wall else 0.0

    @property
    def error_share(self) -> float:
        total = self.answered + sum(self.errors.values())
        return self.failed / total if total else 0.0

    def pct(self, q: float, probe: bool = False) -> float:
        data = self.probe_latencies if probe else self.latencies
        return float(np.percentile(data, q)) if data is not None and len(data) else float("nan")


def shares(connections: int, processes: int) -> list[int]:
    """Connections per client process, as even as they divide (the empty ones left out)."""
    split = [connections // processes + (1 if i < connections % processes else 0)
             for i in range(processes)]  # fmt: skip
    return [n for n in split if n]


def run_clients(
    context: Any, clients: list[tuple[Callable[..., None], tuple[Any, ...]]], timeout: float
) -> list[dict[str, Any]]:
    """Start each (function, args) as a process whose last argument is the results queue, and
    return what each put on it."""
    queue: mp.Queue = context.Queue()
    workers = [context.Process(target=target, args=(*args, queue)) for target, args in clients]
    for worker in workers:
        worker.start()
    results = [queue.get(timeout=timeout) for _ in workers]
    for worker in workers:
        worker.join(10)
    return results


def run_load(
    port: int,
    requests: list[bytes],
    *,
    connections: int,
    duration: float,
    rate: float | None = None,
    processes: int = 2,
    probe_path: str | None = None,
    probe_every: float = 0.02,
) -> LoadResult:
    """Drive the server from `processes` client processes; optionally probe a path meanwhile."""
    context = mp.get_context("fork")
    start_at = time.time() + 0.5
    split = shares(connections, processes)
    clients: list[tuple[Callable[..., None], tuple[Any, ...]]] = [
        (drive, (port, requests[i::processes], n, duration,
                 rate * n / connections if rate else None, start_at))
        for i, n in enumerate(split)
    ]  # fmt: skip
    if probe_path is not None:
        clients.append((probe, (port, probe_path, probe_every, duration, start_at)))
    results = run_clients(context, clients, duration + 60)
    drivers = [r for r in results if "statuses" in r]
    probes = [r for r in results if "statuses" not in r]
    statuses: dict[int, int] = {}
    errors: dict[str, int] = {}
    for result in drivers:
        for status, n in result["statuses"].items():
            statuses[status] = statuses.get(status, 0) + n
        for kind, n in result["errors"].items():
            errors[kind] = errors.get(kind, 0) + n
    return LoadResult(
        latencies=np.concatenate([np.frombuffer(r["latencies"]) for r in drivers]),
        statuses=statuses,
        errors=errors,
        wall=max(r["wall"] for r in drivers),
        client_cpu=sum(r["cpu"] for r in drivers),
        probe_latencies=np.frombuffer(probes[0]["latencies"]) if probes else None,
        probe_failures=probes[0]["failures"] if probes else 0,
    )
