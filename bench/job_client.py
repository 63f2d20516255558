"""onnxq's job client in the benchmarks: threads that submit single-row jobs over keep-alive HTTP
and poll each one when its Retry-After is due, the trace of every job, and what the traces say
(PhaseResult, shared with the bare Celery side)."""

from __future__ import annotations

import heapq
import http.client
import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from typing import Any

import psutil

from bench.meters import CpuMeter
from bench.model import MODEL_NAME

CLIENT_THREADS = 4
POLL_FLOOR_SECONDS = 0.02  # never poll one job more often than this
WARMUP_JOBS = 60
ENDED = {"succeeded", "failed", "cancelled"}


def now() -> float:
    return time.time()


def iso_ts(value: str | None) -> float:
    """A server timestamp (ISO 8601, UTC) as seconds since the epoch, like time.time()."""
    if not value:
        return float("nan")
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


class Http:
    """One keep-alive connection to the gateway, reopened when the server closed it."""

    def __init__(self, port: int, timeout: float = 120.0):
        self.port = port
        self.timeout = timeout
        self.conn: http.client.HTTPConnection | None = None
        self.reconnects = 0

    def request(
        self, method: str, path: str, body: bytes | None = None
    ) -> tuple[int, Message, bytes]:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            try:
                self.conn.request(method, path, body=body, headers=headers)
                response = self.conn.getresponse()
                return response.status, response.headers, response.read()
            except (
                http.client.RemoteDisconnected,
                http.client.CannotSendRequest,
                ConnectionResetError,
                BrokenPipeError,
            ):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
                self.reconnects += 1
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


@dataclass
class JobTrace:
    submit_start: float
    submit_end: float = float("nan")
    job_id: str = ""
    status: str = ""
    polls: int = 0
    client_done: float = float("nan")
    submitted_at: float = float("nan")
    started_at: float = float("nan")
    finished_at: float = float("nan")
    error: str = ""


def retry_after(headers: Message) -> float:
    try:
        return max(float(headers.get("Retry-After", 0)), POLL_FLOOR_SECONDS)
    except ValueError:
        return POLL_FLOOR_SECONDS


def _finish(trace: JobTrace, document: dict[str, Any]) -> None:
    trace.status = document["status"]
    trace.client_done = now()
    trace.submitted_at = iso_ts(document.get("submitted_at"))
    trace.started_at = iso_ts(document.get("started_at"))
    trace.finished_at = iso_ts(document.get("finished_at"))


def onnxq_client(
    port: int,
    rows: list[list[float]],
    next_index: Callable[[], int | None],
    traces: list[JobTrace],
    lock: threading.Lock,
) -> Http:
    """Submit while there is work, poll each job when its Retry-After (≥ 20 ms) is due."""
    http_ = Http(port)
    due: list[tuple[float, int, JobTrace]] = []  # (monotonic due time, tie-break, trace)
    tie = itertools.count()
    submitting = True
    while submitting or due:
        clock = time.monotonic()
        if due and due[0][0] <= clock:
            _, _, trace = heapq.heappop(due)
            status, headers, body = http_.request("GET", f"/v1/jobs/{trace.job_id}")
            trace.polls += 1
            if status != 200:
                trace.error = f"poll HTTP {status}"
                continue
            document = json.loads(body)
            if document["status"] in ENDED:
                _finish(trace, document)
            else:
                heapq.heappush(due, (time.monotonic() + retry_after(headers), next(tie), trace))
        elif submitting:
            index = next_index()
            if index is None:
                submitting = False
                continue
            body = json.dumps({"instances": [rows[index % len(rows)]]}).encode()
            trace = JobTrace(submit_start=now())
            status, headers, answer = http_.request("POST", f"/v1/models/{MODEL_NAME}/jobs", body)
            trace.submit_end = now()
            with lock:
                traces.append(trace)
            if status != 202:
                trace.error = f"submit HTTP {status}: {answer[:200]!r}"
                continue
            trace.job_id = json.loads(answer)["job_id"]
            heapq.heappush(due, (time.monotonic() + retry_after(headers), next(tie), trace))
        else:
            time.sleep(min(max(due[0][0] - clock, 0.0), 0.05))
    http_.close()
    return http_


def onnxq_load(
    port: int,
    rows: list[list[float]],
    n: int | None,
    stop: threading.Event | None = None,
    threads: int = CLIENT_THREADS,
) -> tuple[list[JobTrace], int]:
    """N jobs (or jobs until `stop` is set) from `threads` threads; every trace, and reconnects."""
    counter = itertools.count()
    lock = threading.Lock()
    traces: list[JobTrace] = []
    clients: list[Http] = []
    failures: list[BaseException] = []

    def next_index() -> int | None:
        if stop is not None and stop.is_set():
            return None
        with lock:
            index = next(counter)
        return index if n is None or index < n else None

    def run() -> None:
        try:
            clients.append(onnxq_client(port, rows, next_index, traces, lock))
        except BaseException as exc:  # reported by the caller
            failures.append(exc)

    workers = [threading.Thread(target=run, daemon=True) for _ in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    if failures:
        raise RuntimeError(f"a client thread failed: {failures[0]!r}") from failures[0]
    return traces, sum(client.reconnects for client in clients)


def poll_only(
    port: int, job_ids: list[str], workers: list[psutil.Process], threads: int = CLIENT_THREADS
) -> dict[str, float]:
    """Gateway CPU per poll of an ended job: each id GET once, nothing else running."""
    chunks = [job_ids[i::threads] for i in range(threads)]

    def run(ids: list[str]) -> None:
        http_ = Http(port)
        for job_id in ids:
            http_.request("GET", f"/v1/jobs/{job_id}")
        http_.close()

    meter = CpuMeter({"gateway": workers}).start()
    pool = [threading.Thread(target=run, args=(chunk,), daemon=True) for chunk in chunks]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    meter.stop()
    return {"polls": len(job_ids), "poll_ms": meter.used["gateway"] * 1000 / len(job_ids)}


@dataclass
class PhaseResult:
    """N single-row jobs on one side (bare Celery or onnxq): rates, latencies, CPU."""

    name: str
    n: int
    ok: int
    errors: int
    first_submit: float
    last_available: float
    last_client: float
    latency_available: list[float]
    latency_client: list[float]
    cpu: CpuMeter | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate_available(self) -> float:
        return self.ok / (self.last_available - self.first_submit)

    @property
    def rate_client(self) -> float:
        return self.ok / (self.last_client - self.first_submit)

    def cpu_ms_per_job(self) -> dict[str, float]:
        assert self.cpu is not None
        return {name: used * 1000 / self.ok for name, used in self.cpu.used.items()}


def summarise_onnxq(traces: list[JobTrace], name: str) -> PhaseResult:
    good = [t for t in traces if t.status == "succeeded"]
    return PhaseResult(
        name=name,
        n=len(traces),
        ok=len(good),
        errors=len(traces) - len(good),
        first_submit=min(t.submit_start for t in traces),
        last_available=max(t.finished_at for t in good),
        last_client=max(t.client_done for t in good),
        latency_available=[t.finished_at - t.submit_start for t in good],
        latency_client=[t.client_done - t.submit_start for t in good],
        extra={
            "submit_http": [t.submit_end - t.submit_start for t in good],
            "queued": [t.started_at - t.submitted_at for t in good],
            "running": [t.finished_at - t.started_at for t in good],
            "polls": [t.polls for t in good],
            "errors_sample": [t.error for t in traces if t.error][:3],
        },
    )
