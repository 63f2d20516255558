"""A lean gRPC load generator: unary calls as prebuilt HTTP/2 frames on raw sockets.

bench/load_client.py measures the HTTP routes with a client that costs tens of microseconds per
request; grpcio's Python client costs 0.2-0.6 ms of CPU per call on the same two cores the server
runs on, so it measures the client as much as the server. This one does for gRPC what wrk and
h2load do (and what ghz would, were it installed here): each connection speaks h2c directly,
one call at a time in a closed loop, with one prebuilt header block (HPACK literals, so no
table state) and one prebuilt message. It parses only frame headers: a call succeeded when
the response's DATA has exactly the length of the reference answer (fetched once with grpcio
by the caller) and the stream ended; anything else (a trailers-only error, RST_STREAM, GOAWAY)
counts as an error.

Flow control: the client opens its own windows to the maximum once, and sends a request's DATA
only as far as the server's windows allow, resuming on its WINDOW_UPDATEs. PINGs are answered
(grpc probes bandwidth with them); SETTINGS are acknowledged.
"""

from __future__ import annotations

import multiprocessing as mp
import selectors
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from bench.load_client import LoadResult, run_clients, shares

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0, 1, 3, 4, 6, 7, 8
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4
MAX_WINDOW = 2**31 - 1
DEFAULT_WINDOW, DEFAULT_FRAME = 65535, 16384


def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return (
        struct.pack(">I", len(payload))[1:]
        + bytes((kind, flags))
        + struct.pack(">I", stream)
        + payload
    )


def _integer(value: int, prefix_bits: int = 7) -> bytes:
    """An HPACK integer (RFC 7541 5.1) with a zero first-byte flag."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((value,))
    out, value = bytearray((limit,)), value - limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def header_block(path: str, authority: str) -> bytes:
    """The request's headers: :method POST and :scheme http from the static table, the rest as
    literals without indexing (RFC 7541 6.2.2), which leave both sides' tables untouched."""
    block = bytearray(b"\x83\x86")
    for name, value in (
        (":path", path),
        (":authority", authority),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ):
        block += b"\x00" + _integer(len(name)) + name.encode()
        block += _integer(len(value)) + value.encode()
    return bytes(block)


class WireConnection:
    """One h2c connection making one unary call at a time: `start` sends a call, `feed` takes
    what the socket gave and says how the call ended (True: the expected answer; False: an
    error) or None while it goes on."""

    def __init__(self, port: int, headers: bytes, body: bytes, expected: int):
        self.headers, self.body, self.expected = headers, body, expected
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.send_window = DEFAULT_WINDOW  # the server's connection window for our DATA
        self.initial_window = DEFAULT_WINDOW  # the server's window for each new stream
        self.max_frame = DEFAULT_FRAME
        self.stream_id = -1
        self.stream_window = 0
        self.pending = memoryview(b"")
        self.received = 0
        self.buffer = bytearray()
        settings = struct.pack(">HI", 0x4, MAX_WINDOW)  # SETTINGS_INITIAL_WINDOW_SIZE
        self.sock.sendall(
            PREFACE
            + frame(SETTINGS, 0, 0, settings)
            + frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", MAX_WINDOW - DEFAULT_WINDOW))
        )

    def start(self) -> None:
        self.stream_id += 2  # client streams are odd: 1, 3, 5...
        self.stream_window = self.initial_window
        self.pending = memoryview(self.body)
        self.received = 0
        self.sock.sendall(frame(HEADERS, END_HEADERS, self.stream_id, self.headers))
        self._push()

    def call(self) -> bool:
        """One whole call on a blocking socket."""
        self.start()
        while (outcome := self.feed(self.sock.recv(262144))) is None:
            pass
        return outcome

    def feed(self, chunk: bytes) -> bool | None:
        if not chunk:
            raise ConnectionError("the server closed a connection")
        self.buffer += chunk
        view, used, outcome = memoryview(self.buffer), 0, None
        while len(view) - used >= 9:
            length = int.from_bytes(view[used : used + 3], "big")
            if len(view) - used < 9 + length:
                break
            kind, flags = view[used + 3], view[used + 4]
            sid = int.from_bytes(view[used + 5 : used + 9], "big") & MAX_WINDOW
            ended = self._handle(kind, flags, sid, view[used + 9 : used + 9 + length])
            outcome = ended if ended is not None else outcome
            used += 9 + length
        view.release()
        del self.buffer[:used]
        return outcome

    def _push(self) -> None:
        """As much of the pending DATA as the server's windows take."""
        out = bytearray()
        while self.pending:
            size = min(len(self.pending), self.max_frame, self.send_window, self.stream_window)
            if size <= 0:
                break
            chunk, self.pending = self.pending[:size], self.pending[size:]
            self.send_window -= size
            self.stream_window -= size
            out += frame(DATA, 0 if self.pending else END_STREAM, self.stream_id, chunk)
        if out:
            self.sock.sendall(out)

    def _handle(self, kind: int, flags: int, sid: int, payload: memoryview) -> bool | None:
        if kind == SETTINGS and not flags & ACK:
            for offset in range(0, len(payload), 6):
                key, value = struct.unpack_from(">HI", payload, offset)
                if key == 0x4:
                    self.stream_window += value - self.initial_window
                    self.initial_window = value
                elif key == 0x5:
                    self.max_frame = value
            self.sock.sendall(frame(SETTINGS, ACK, 0))
        elif kind == PING and not flags & ACK:
            self.sock.sendall(frame(PING, ACK, 0, bytes(payload)))
        elif kind == WINDOW_UPDATE:
            increment = struct.unpack_from(">I", payload)[0] & MAX_WINDOW
            if sid == 0:
                self.send_window += increment
            elif sid == self.stream_id:
                self.stream_window += increment
            self._push()
        elif kind == GOAWAY:
            raise ConnectionError("GOAWAY")
        elif sid == self.stream_id:
            if kind == DATA:
                self.received += len(payload)
            if kind == RST_STREAM:
                return False
            if kind in (DATA, HEADERS) and flags & END_STREAM:
                return self.received == self.expected
        return None


def connection(port: int, path: str, message: bytes, expected: int) -> WireConnection:
    """A connection that calls `path` with `message` (serialized), expecting `expected` bytes."""
    body = b"\x00" + struct.pack(">I", len(message)) + message  # gRPC's length-prefixed message
    return WireConnection(port, header_block(path, f"127.0.0.1:{port}"), body, expected)


def drive(
    port: int, path: str, message: bytes, expected: int, connections: int, duration: float,
    start_at: float, queue: mp.Queue,
) -> None:  # fmt: skip
    """Closed-loop calls on `connections` connections until `duration` has passed."""
    selector = selectors.DefaultSelector()
    conns = [connection(port, path, message, expected) for _ in range(connections)]
    sent_at: dict[WireConnection, float] = {}
    latencies: list[float] = []
    errors: dict[str, int] = {}
    while time.time() < start_at:
        time.sleep(0.001)
    cpu_started = time.process_time()
    started = time.perf_counter()
    stop_at = started + duration
    for conn in conns:
        conn.sock.setblocking(False)
        selector.register(conn.sock, selectors.EVENT_READ, conn)
        sent_at[conn] = time.perf_counter()
        conn.start()
    while (now := time.perf_counter()) < stop_at:
        for key, _ in selector.select(max(0.0, min(stop_at - now, 0.05))):
            conn = key.data
            outcome = conn.feed(conn.sock.recv(262144))
            if outcome is None:
                continue
            done = time.perf_counter()
            if outcome:
                latencies.append(done - sent_at[conn])
            else:
                errors["grpc"] = errors.get("grpc", 0) + 1
            if done < stop_at:
                sent_at[conn] = done
                conn.start()
    for conn in conns:  # calls in flight when time is up are neither counted nor failed
        conn.sock.close()
    queue.put(
        {
            "latencies": np.asarray(latencies, dtype=np.float64).tobytes(),
            "errors": errors,
            "cpu": time.process_time() - cpu_started,
            "wall": time.perf_counter() - started,
        }
    )


def run_wire_load(
    port: int, method_path: str, message: bytes, expected_bytes: int, *, connections: int,
    duration: float, processes: int = 2,
) -> LoadResult:  # fmt: skip
    """Drive `method_path` on 127.0.0.1:`port` from `processes` client processes.

    `expected_bytes`: the length of a correct answer's DATA (the 5-byte prefix and message).
    """
    context = mp.get_context("spawn")  # the caller may have used grpcio, which must not fork
    start_at = time.time() + 2.0  # a spawned interpreter takes a moment to start
    clients: list[tuple[Callable[..., None], tuple[Any, ...]]] = [
        (drive, (port, method_path, message, expected_bytes, n, duration, start_at))
        for n in shares(connections, processes)
    ]
    results = run_clients(context, clients, duration + 60)
    errors: dict[str, int] = {}
    for result in results:
        for kind, n in result["errors"].items():
            errors[kind] = errors.get(kind, 0) + n
    latencies = np.concatenate([np.frombuffer(r["latencies"]) for r in results])
    return LoadResult(
        latencies=latencies,
        statuses={200: len(latencies)},
        errors=errors,
        wall=max(r["wall"] for r in results),
        client_cpu=sum(r["cpu"] for r in results),
    )
