"""Throughput of onnxq vs a bare Celery service and raw ONNX Runtime: one machine, one run.

    .venv/bin/python bench/throughput.py [--jobs 2000] [--rows 100000]

1. builds (or reuses) the RandomForest-100 breast-cancer demo model;
2. bare Celery (bench/bare_celery.py, prefork 2, Redis broker + result backend) runs N single-row
   tasks submitted with apply_async;
3. onnxq (gunicorn gateway + `python -m worker`) runs the same N single-row jobs submitted and
   polled over HTTP; then a second, profiled load (py-spy) shows where the CPU goes;
4. one 100,000-row onnxq job against session.run on the same rows in this process;
5. writes docs/benchmarks.md (only the generated block between its markers is replaced).

Everything runs on its own redis-server on a free port; every process started here is stopped on
the way out, also on Ctrl-C. See docs/benchmarks.md for how to read the numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import http.client
import importlib.metadata
import itertools
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `bench.bare_celery` importable
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import psutil  # noqa: E402

from onnxq.cli.run import gunicorn_config_path  # noqa: E402
from onnxq.devtools.redis_server import RedisServer, free_port  # noqa: E402
from onnxq.models.repository import ModelRepository  # noqa: E402

MODEL_NAME = "breast-cancer"
N_ESTIMATORS = 100
CLIENT_THREADS = 4
POLL_FLOOR_SECONDS = 0.02  # never poll one job more often than this
WARMUP_JOBS = 60
PROFILE_SECONDS = 10
PROFILE_RATE = 50
CONCURRENCY = 2
REPORT_BEGIN = "<!-- bench/throughput.py: generated block begins -->"
REPORT_END = "<!-- bench/throughput.py: generated block ends -->"


# --------------------------------------------------------------------------- small helpers


def now() -> float:
    return time.time()


def pct(values: Iterable[float], q: float) -> float:
    data = list(values)
    return float(np.percentile(data, q)) if data else float("nan")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms"


def iso_ts(value: str | None) -> float:
    """A server timestamp (ISO 8601, UTC) as seconds since the epoch, like time.time()."""
    if not value:
        return float("nan")
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")


# --------------------------------------------------------------------------- processes


@dataclass
class Service:
    """A child process in its own session, output to a file; stopped by its own pid only."""

    name: str
    command: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> Service:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command,
                env=self.env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def children(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.pid).children(recursive=False)
        except psutil.NoSuchProcess:
            return []

    def stop(self, timeout: float = 20.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            # The group is the one this script created for this child (start_new_session).
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


class CpuMeter:
    """CPU seconds (user + system) used by named groups of processes between start() and stop()."""

    def __init__(self, groups: dict[str, list[psutil.Process]], redis_url: str | None = None):
        self.groups = groups
        self.redis_url = redis_url
        self.redis_calls: Counter[str] = Counter()  # Redis commands run meanwhile, by name
        self._redis_before: Counter[str] = Counter()
        self.before: dict[str, float] = {}
        self.used: dict[str, float] = {}
        self.wall = 0.0
        self.other = 0.0  # CPU seconds of every other process on the machine meanwhile
        self._started = 0.0
        self._system_before = 0.0

    @staticmethod
    def _system_busy() -> float:
        times = psutil.cpu_times()
        return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))

    @staticmethod
    def _cpu(processes: list[psutil.Process]) -> float:
        total = 0.0
        for process in processes:
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                total += times.user + times.system
        return total

    def start(self) -> CpuMeter:
        self.before = {name: self._cpu(procs) for name, procs in self.groups.items()}
        self._system_before = self._system_busy()
        self._redis_before = self._commandstats()
        self._started = time.monotonic()
        return self

    def _commandstats(self) -> Counter[str]:
        if self.redis_url is None:
            return Counter()
        import redis

        client = redis.Redis.from_url(self.redis_url)
        try:
            stats = client.info("commandstats")
        finally:
            client.close()
        return Counter(
            {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}
        )

    def stop(self) -> CpuMeter:
        self.wall = time.monotonic() - self._started
        system = self._system_busy() - self._system_before
        self.redis_calls = self._commandstats() - self._redis_before
        self.redis_calls["info"] -= 1  # our own
        self.used = {
            name: self._cpu(procs) - self.before[name] for name, procs in self.groups.items()
        }
        self.other = max(0.0, system - sum(self.used.values()))
        return self

    @property
    def capacity(self) -> float:
        return self.wall * (os.cpu_count() or 1)


# --------------------------------------------------------------------------- model and data


def prepare_model(cache_dir: Path) -> Path:
    """The demo model (RandomForest, 100 trees) in a repository under cache_dir; built once."""
    manifest = cache_dir / MODEL_NAME / "1" / "manifest.json"
    if manifest.is_file():
        source = json.loads(manifest.read_text()).get("source", {})
        if f"n_estimators={N_ESTIMATORS}" in source.get("estimator", ""):
            say(f"reusing the model in {cache_dir}")
            return cache_dir
        shutil.rmtree(cache_dir)
    from onnxq.registry.demo import (
        build_demo_model,  # needs the export extra (scikit-learn, skl2onnx)
    )

    say("building the RandomForest-100 breast-cancer model ...")
    cache_dir.mkdir(parents=True, exist_ok=True)
    build_demo_model(ModelRepository(cache_dir), n_estimators=N_ESTIMATORS)
    return cache_dir


def breast_cancer() -> np.ndarray:
    from sklearn.datasets import load_breast_cancer

    return np.asarray(load_breast_cancer().data, dtype=np.float64)


def make_session(model_path: Path) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])


# --------------------------------------------------------------------------- raw onnxruntime


def raw_single_row(model_path: Path, rows: np.ndarray, n: int) -> dict[str, float]:
    """session.run on one row at a time, in this process: the floor a single-row job pays."""
    session = make_session(model_path)
    x = rows.astype(np.float32)
    for i in range(50):
        session.run(None, {"input": x[i : i + 1]})
    started = time.perf_counter()
    for i in range(n):
        j = i % len(x)
        session.run(None, {"input": x[j : j + 1]})
    elapsed = time.perf_counter() - started
    return {"per_call_s": elapsed / n, "calls_per_s": n / elapsed}


def json_floor(body: bytes) -> dict[str, float]:
    """What merely reading a JSON body of this size costs, in this process."""
    out = {}
    started = time.perf_counter()
    parsed = json.loads(body)
    out["json_loads"] = time.perf_counter() - started
    started = time.perf_counter()
    np.asarray(parsed["instances"], dtype=np.float32)
    out["to_matrix"] = time.perf_counter() - started
    with contextlib.suppress(ImportError):
        import orjson

        started = time.perf_counter()
        orjson.loads(body)
        out["orjson_loads"] = time.perf_counter() - started
    return out


def raw_bulk(session: Any, x: np.ndarray, repeats: int = 3) -> list[float]:
    session.run(None, {"input": x[:1000]})
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        session.run(None, {"input": x})
        times.append(time.perf_counter() - started)
    return times


# --------------------------------------------------------------------------- bare Celery


@dataclass
class PhaseResult:
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


def start_bare_worker(redis_url: str, model_path: Path, workdir: Path) -> Service:
    env = dict(os.environ, BENCH_REDIS_URL=redis_url, BENCH_MODEL_PATH=str(model_path))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "bench.bare_celery",
        "worker",
        "--pool",
        "prefork",
        "--concurrency",
        str(CONCURRENCY),
        "--loglevel",
        "WARNING",
        "--without-gossip",
        "--without-mingle",
    ]
    return Service("bare-celery", command, env, workdir / "bare_celery.log").start()


def bare_load(task: Any, rows: list[list[float]], n: int) -> tuple[list[float], list[Any]]:
    submits, results = [], []
    for i in range(n):
        submits.append(now())
        results.append(task.apply_async(args=[rows[i % len(rows)]]))
    return submits, results


def run_bare(
    redis_url: str,
    model_path: Path,
    rows: list[list[float]],
    n: int,
    workdir: Path,
    redis_process: psutil.Process,
) -> PhaseResult:
    os.environ["BENCH_REDIS_URL"] = redis_url
    os.environ["BENCH_MODEL_PATH"] = str(model_path)
    from bench import bare_celery

    bare_celery.app.conf.update(broker_url=redis_url, result_backend=redis_url)
    worker = start_bare_worker(redis_url, model_path, workdir)
    try:
        wait_until(lambda: len(worker.children()) >= CONCURRENCY, 60, "bare Celery's children")
        # Warm-up: both children have a session and every connection is open.
        _, warm = bare_load(bare_celery.predict, rows, WARMUP_JOBS)
        for result in warm:
            result.get(timeout=60)
        children = worker.children()
        meter = CpuMeter(
            {
                "client (this script)": [psutil.Process()],
                "celery main (consumer)": [psutil.Process(worker.pid)],
                "celery children (ORT)": children,
                "redis-server": [redis_process],
            },
            redis_url,
        ).start()
        say(f"bare Celery: {n} single-row tasks ...")
        submits, results = bare_load(bare_celery.predict, rows, n)
        client_done, available, errors = [], [], 0
        for result in results:
            try:
                result.get(timeout=120)
            except Exception:  # a failed task counts as an error, not as a result
                errors += 1
                client_done.append(float("nan"))
                available.append(float("nan"))
                continue
            client_done.append(now())
            done = result.date_done
            if done.tzinfo is None:
                done = done.replace(tzinfo=UTC)
            available.append(done.timestamp())
        meter.stop()
        good = [i for i in range(n) if not np.isnan(available[i])]
        return PhaseResult(
            name="bare Celery",
            n=n,
            ok=len(good),
            errors=errors,
            first_submit=submits[0],
            last_available=max(available[i] for i in good),
            last_client=max(client_done[i] for i in good),
            latency_available=[available[i] - submits[i] for i in good],
            latency_client=[client_done[i] - submits[i] for i in good],
            cpu=meter,
            extra={"submit_s": submits[-1] - submits[0]},
        )
    finally:
        worker.stop()
        with contextlib.suppress(Exception):
            bare_celery.app.close()


# --------------------------------------------------------------------------- onnxq over HTTP


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
            if document["status"] in {"succeeded", "failed", "cancelled"}:
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
    """N jobs (or jobs until `stop` is set) from `threads` threads; returns every trace."""
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


def service_env(redis_url: str, model_dir: Path, log_dir: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ONNXQ_", "BENCH_"))}
    env.update(
        ONNXQ_REDIS_URL=redis_url,
        ONNXQ_MODEL_DIR=str(model_dir),
        ONNXQ_PREDICTION_LOG_DIR=str(log_dir),
        ONNXQ_GATEWAY_HOST="127.0.0.1",
        ONNXQ_GATEWAY_PORT=str(port),
        ONNXQ_GATEWAY_WORKERS=str(CONCURRENCY),
        ONNXQ_WORKER_CONCURRENCY=str(CONCURRENCY),
        ONNXQ_ALLOW_UNAUTHENTICATED="true",
    )
    return env


@dataclass
class OnnxqStack:
    gateway: Service
    worker: Service
    port: int

    def worker_children(self) -> list[psutil.Process]:
        return self.worker.children()

    def gateway_workers(self) -> list[psutil.Process]:
        return self.gateway.children()

    def stop(self) -> None:
        self.gateway.stop()
        self.worker.stop()


def gateway_ready(port: int) -> bool:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        connection.request("GET", "/ready")
        ok = connection.getresponse().status == 200
        connection.close()
        return ok
    except OSError:
        return False


def start_onnxq(
    redis_url: str,
    model_dir: Path,
    workdir: Path,
    extra_env: dict[str, str] | None = None,
    gunicorn_args: Iterable[str] = (),
) -> OnnxqStack:
    """Gateway and worker as tests/integration/conftest.py starts them; stopped if not ready."""
    port = free_port()
    env = service_env(redis_url, model_dir, workdir / "predictions", port)
    env.update(extra_env or {})
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        str(gunicorn_config_path()),
        *gunicorn_args,
        "gateway:create_app()",
    ]
    gateway = Service("gateway", command, env, workdir / "gateway.log").start()
    worker = Service("worker", [sys.executable, "-m", "worker"], env, workdir / "worker.log")
    worker.start()
    stack = OnnxqStack(gateway, worker, port)

    def worker_ready() -> bool:
        out = worker.output()
        return " ready." in out and out.count('"worker_process_ready"') >= CONCURRENCY

    try:
        wait_until(lambda: gateway_ready(port), 60, "the onnxq gateway to be ready")
        wait_until(worker_ready, 60, "the onnxq worker to be ready")
        wait_until(lambda: len(stack.gateway_workers()) >= CONCURRENCY, 30, "gunicorn's workers")
    except BaseException:
        stack.stop()
        raise
    return stack


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


def worker_job_events(log_path: Path, job_ids: set[str]) -> list[dict[str, Any]]:
    events = []
    for line in log_path.read_text(errors="replace").splitlines():
        if '"event": "job"' not in line and '"event":"job"' not in line:
            continue
        with contextlib.suppress(ValueError):
            event = json.loads(line)
            if event.get("event") == "job" and event.get("job_id") in job_ids:
                events.append(event)
    return events


def batch_summary(events: list[dict[str, Any]]) -> dict[str, Any]:
    sizes = [int(e["batch_jobs"]) for e in events if "batch_jobs" in e]
    if not sizes:
        return {}
    buckets = [(1, 1), (2, 3), (4, 7), (8, 15), (16, 31), (32, 63), (64, 10**9)]
    jobs_in = Counter()
    for size in sizes:
        for low, high in buckets:
            if low <= size <= high:
                jobs_in[(low, high)] += 1
    batches = sum(1 / s for s in sizes)
    return {
        "jobs": len(sizes),
        "batches": round(batches),
        "mean_per_batch": len(sizes) / batches,
        "job_weighted_mean": statistics.fmean(sizes),
        "max": max(sizes),
        "buckets": [(low, high, jobs_in[(low, high)]) for low, high in buckets],
        "duration_ms_p50": pct([float(e.get("duration_ms", 0)) for e in events], 50),
    }


# --------------------------------------------------------------------------- py-spy


def pyspy_binary() -> str:
    candidate = Path(sys.executable).parent / "py-spy"
    found = str(candidate) if candidate.exists() else shutil.which("py-spy")
    if not found:
        raise RuntimeError("py-spy not found: .venv/bin/pip install py-spy")
    return found


def start_pyspy(pid: int, out: Path, duration: float | None) -> subprocess.Popen[bytes]:
    command = [
        pyspy_binary(),
        "record",
        "--pid",
        str(pid),
        "--rate",
        str(PROFILE_RATE),
        "--nonblocking",
        "--format",
        "raw",
        "-o",
        str(out),
    ]
    if duration is not None:
        command += ["--duration", str(int(duration))]
    log = out.with_suffix(".log").open("wb")
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def stop_pyspy(processes: list[subprocess.Popen[bytes]], timeout: float = 30) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)  # py-spy writes what it has, then exits
    for process in processes:
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _frame_key(frame: str) -> tuple[str, str]:
    """'JobRunner.run (worker/jobs.py:55)' -> ('JobRunner.run', 'worker/jobs.py')."""
    name, _, where = frame.rpartition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    if path.startswith(str(ROOT) + "/"):
        path = path[len(str(ROOT)) + 1 :]
    return (name or frame), path


def _is_project(path: str) -> bool:
    top = path.split("/", 1)[0]
    return top in {"onnxq", "gateway", "worker", "bench"} and (ROOT / path).is_file()


def _package(path: str) -> str:
    if _is_project(path):
        return "onnxq (this repo)"
    if "site-packages/" in path:
        path = path.split("site-packages/", 1)[1]
    head = path.split("/", 1)[0]
    return head.removesuffix(".py") if "/" in path or head.endswith(".py") else head


@dataclass
class Profile:
    label: str
    samples: int
    per_process: dict[str, int]
    self_top: list[tuple[str, str, float]]
    project_inclusive: list[tuple[str, str, float]]
    by_package: list[tuple[str, float]]


def summarise_profile(label: str, files: dict[str, Path], top: int = 10) -> Profile:
    self_counts: Counter[tuple[str, str]] = Counter()
    inclusive: Counter[tuple[str, str]] = Counter()
    packages: Counter[str] = Counter()
    per_process: dict[str, int] = {}
    total = 0
    for name, path in files.items():
        count_here = 0
        if path.exists():
            for line in path.read_text(errors="replace").splitlines():
                stack, _, count_text = line.rpartition(" ")
                if not stack or not count_text.isdigit():
                    continue
                count = int(count_text)
                frames = [_frame_key(frame) for frame in stack.split(";") if frame]
                if not frames:
                    continue
                count_here += count
                self_counts[frames[-1]] += count
                packages[_package(frames[-1][1])] += count
                for key in set(frames):
                    if _is_project(key[1]):
                        inclusive[key] += count
        per_process[name] = count_here
        total += count_here
    share = (lambda c: c / total) if total else (lambda c: 0.0)
    return Profile(
        label=label,
        samples=total,
        per_process=per_process,
        self_top=[(n, p, share(c)) for (n, p), c in self_counts.most_common(top)],
        # frames on (nearly) every sample, like worker/__main__.py's main(), say nothing
        project_inclusive=[
            (n, p, share(c)) for (n, p), c in inclusive.most_common() if share(c) < 0.97
        ][: top + 5],
        by_package=[(k, share(c)) for k, c in packages.most_common(8)],
    )


def onnxq_groups(
    stack: OnnxqStack, redis_process: psutil.Process
) -> dict[str, list[psutil.Process]]:
    return {
        "client (this script)": [psutil.Process()],
        "gunicorn workers": stack.gateway_workers(),
        "gunicorn master": [psutil.Process(stack.gateway.pid)],
        "celery main (consumer)": [psutil.Process(stack.worker.pid)],
        "celery children (ORT)": stack.worker_children(),
        "redis-server": [redis_process],
    }


def measure_onnxq(
    stack: OnnxqStack,
    rows: list[list[float]],
    n: int,
    redis_url: str,
    redis_process: psutil.Process,
) -> dict[str, Any]:
    """Warm up, then N single-row jobs; the batch sizes and the gateway's submit/poll split."""
    onnxq_load(stack.port, rows, WARMUP_JOBS)
    meter = CpuMeter(onnxq_groups(stack, redis_process), redis_url).start()
    traces, reconnects = onnxq_load(stack.port, rows, n)
    meter.stop()
    onnxq = summarise_onnxq(traces, "onnxq")
    onnxq.cpu = meter
    onnxq.extra["reconnects"] = reconnects
    job_ids = [t.job_id for t in traces if t.job_id]
    batches = batch_summary(worker_job_events(stack.worker.log_path, set(job_ids)))
    split = poll_only(stack.port, job_ids[:1000], stack.gateway_workers())
    polls_per_job = statistics.fmean(t.polls for t in traces)
    gateway_ms = meter.used["gunicorn workers"] * 1000 / onnxq.ok
    split.update(
        polls_per_job=polls_per_job, submit_ms=gateway_ms - polls_per_job * split["poll_ms"]
    )
    return {"onnxq": onnxq, "batches": batches, "gateway_split": split}


def pair_noise(pair: dict[str, Any]) -> float:
    """The larger share of the machine other processes took during either run of a pair."""
    return max(p.cpu.other / p.cpu.capacity for p in (pair["bare"], pair["onnxq"]) if p.cpu)


def profile_targets(stack: OnnxqStack) -> dict[str, int]:
    targets = {}
    for i, child in enumerate(stack.gateway_workers()):
        targets[f"gateway-{i}"] = child.pid
    for i, child in enumerate(stack.worker_children()):
        targets[f"worker-child-{i}"] = child.pid
    targets["worker-main"] = stack.worker.pid
    return targets


def grouped_profiles(label: str, files: dict[str, Path]) -> list[Profile]:
    groups = {
        "gunicorn workers (gateway)": {k: v for k, v in files.items() if k.startswith("gateway")},
        "Celery prefork children (worker)": {
            k: v for k, v in files.items() if k.startswith("worker-child")
        },
        "Celery main process (worker, consumer)": {
            k: v for k, v in files.items() if k == "worker-main"
        },
    }
    return [summarise_profile(f"{label}: {group}", members) for group, members in groups.items()]


# --------------------------------------------------------------------------- the large job


def large_job(port: int, body: bytes, rows: int) -> dict[str, float]:
    http_ = Http(port, timeout=600)
    started = now()
    status, _, answer = http_.request("POST", f"/v1/models/{MODEL_NAME}/jobs", body)
    submitted = now()
    if status != 202:
        raise RuntimeError(f"large job submit answered {status}: {answer[:300]!r}")
    job_id = json.loads(answer)["job_id"]
    polls = 0
    while True:
        poll_start = now()
        status, _, answer = http_.request("GET", f"/v1/jobs/{job_id}")
        poll_end = now()
        polls += 1
        if status != 200:
            raise RuntimeError(f"large job poll answered {status}: {answer[:300]!r}")
        document = json.loads(answer)
        if document["status"] in {"succeeded", "failed", "cancelled"}:
            break
        time.sleep(POLL_FLOOR_SECONDS)
    parsed = now()
    http_.close()
    if document["status"] != "succeeded":
        raise RuntimeError(f"large job ended {document['status']}: {document.get('error')}")
    returned = len(document["result"]["probabilities"])
    if returned != rows:
        raise RuntimeError(f"large job returned {returned} rows, not {rows}")
    submitted_at = iso_ts(document["submitted_at"])
    started_at = iso_ts(document["started_at"])
    finished_at = iso_ts(document["finished_at"])
    return {
        "total": poll_end - started,
        "total_with_parse": parsed - started,
        "submit_http": submitted - started,
        "validate": submitted_at - started,  # request read + parsed + checked, up to the record
        "enqueue": submitted - submitted_at,  # record + Celery message + 202
        "queued": started_at - submitted_at,
        "running": finished_at - started_at,
        "store_and_detect": poll_start - finished_at,  # result written, then seen by a poll
        "fetch": poll_end - poll_start,
        "client_parse": parsed - poll_end,
        "polls": polls,
        "response_bytes": len(answer),
    }


# --------------------------------------------------------------------------- the report


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for package in [
        "onnxruntime",
        "celery",
        "kombu",
        "redis",
        "flask",
        "gunicorn",
        "numpy",
        "pydantic",
        "scikit-learn",
        "py-spy",
    ]:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            out[package] = importlib.metadata.version(package)
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        text = subprocess.run(
            ["redis-server", "--version"], capture_output=True, text=True, timeout=5
        ).stdout
        out["redis-server"] = next(
            (p.split("=", 1)[1] for p in text.split() if p.startswith("v=")), text.strip()
        )
    return out


def git_state() -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10
        ).stdout

    try:
        head = git("log", "-1", "--format=%h %s").strip()
        dirty = [line[3:] for line in git("status", "--porcelain").splitlines() if line.strip()]
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"`{head}`" + (f"; uncommitted: {', '.join(dirty)}" if dirty else "")


def machine() -> dict[str, str]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "kernel": platform.release(),
        "memory": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "load_before": load,
    }


def fmt_rate(value: float) -> str:
    return f"{value:,.0f}"


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def render(results: dict[str, Any]) -> str:
    lines: list[str] = []
    add = lines.append
    bare: PhaseResult = results["bare"]
    onnxq: PhaseResult = results["onnxq"]
    ratio = onnxq.rate_available / bare.rate_available
    ratio_client = onnxq.rate_client / bare.rate_client
    add(f"## Run of {results['date']}")
    add("")
    add("```sh")
    add(results["command"])
    add("```")
    add("")
    m = results["machine"]
    add(
        f"- machine: {m['nproc']} cores ({m['cpu']}), {m['memory']}, Linux {m['kernel']}; "
        f"load average before the run {m['load_before']} (a shared, noisy machine)"
    )
    add("- versions: " + ", ".join(f"{k} {v}" for k, v in results["versions"].items()))
    add(f"- code: {results['git']}")
    add(f"- wall time of the whole script: {results['script_seconds']:.0f} s")
    add(
        f"- model: RandomForestClassifier(n_estimators={N_ESTIMATORS}) on breast-cancer "
        f"(30 float32 features), ONNX {results['model_kb']:.0f} KB; every session "
        "intra_op_num_threads=1"
    )
    add(
        f"- processes: prefork concurrency {CONCURRENCY} on both sides; onnxq gateway = gunicorn "
        f"{CONCURRENCY} gthread workers x 4 threads; one redis-server (AOF everysec) for all"
    )
    add(
        f"- client: this script on the same machine; bare Celery = one thread calling "
        f"`apply_async` N times, then `result.get()` on each; onnxq = {CLIENT_THREADS} threads, "
        "one keep-alive `http.client` connection each, submitting while polling every job when "
        "its `Retry-After` is due (never more often than every "
        f"{POLL_FLOOR_SECONDS * 1000:.0f} ms)"
    )
    add("")
    add(f"### 1. {bare.n:,} single-row jobs: bare Celery vs onnxq (run back to back)")
    add("")
    pairs = results["pairs"]
    ratios = [p["onnxq"].rate_available / p["bare"].rate_available for p in pairs]
    median_ratio = statistics.median(ratios)
    add(
        f'The pair (bare Celery, then onnxq) ran {len(pairs)} times; "noise" is the share of the '
        "2 cores that other processes on this shared machine used meanwhile."
    )
    add("")
    add(
        "| pair | bare jobs/s | onnxq jobs/s | **onnxq ÷ bare** | bare CPU ms/job "
        "| onnxq CPU ms/job | noise (bare / onnxq) |"
    )
    add("|---:|---:|---:|---:|---:|---:|---|")
    for i, (pair, r) in enumerate(zip(pairs, ratios, strict=True), 1):
        b, o = pair["bare"], pair["onnxq"]
        noise = " / ".join(f"{x.cpu.other / x.cpu.capacity:.0%}" for x in (b, o))
        add(
            f"| {i} | {fmt_rate(b.rate_available)} | {fmt_rate(o.rate_available)} | **{r:.2f}** "
            f"| {sum(b.cpu_ms_per_job().values()):.2f} | {sum(o.cpu_ms_per_job().values()):.2f} "
            f"| {noise} |"
        )
    add("")
    add(f"**Median onnxq ÷ bare: {median_ratio:.2f}**; target ≥ 2 → {verdict(median_ratio >= 2)}.")
    add("")
    add(
        f"The details below are from pair {results['detail_pair']}, the one least disturbed by "
        "other processes."
    )
    add("")
    add(
        "\"Result available\" is when the result was stored: Celery's `date_done`, onnxq's "
        '`finished_at`; "client saw" is when the client had it in hand (after `result.get()`, '
        "or the poll that found it). Throughput is comparable; latency is not quite: the bare "
        "client queues all N tasks at once (open loop), so its latency is mostly waiting in the "
        f"queue, while the {CLIENT_THREADS} onnxq client threads wait for each 202 before the next "
        "submit (closed loop), and onnxq answers `Retry-After: 1`, which the client honours, so "
        '"client has it" cannot be under 1 s for onnxq.'
    )
    add("")
    noisy = [p.name for p in (bare, onnxq) if p.cpu and p.cpu.other > 0.2 * p.cpu.capacity]
    if noisy:
        add(
            f"**Noise warning:** other processes on the machine used more than 20% of the cores "
            f"during the {' and '.join(noisy)} run (see the CPU table); the ratio is less "
            "trustworthy than usual."
        )
        add("")
    add("| | bare Celery | onnxq | onnxq ÷ bare |")
    add("|---|---:|---:|---:|")
    add(
        f"| **jobs/s** (first submit → last result available) | {fmt_rate(bare.rate_available)} "
        f"| {fmt_rate(onnxq.rate_available)} | **{ratio:.2f}** |"
    )
    add(
        f"| jobs/s (first submit → last result the client saw) | {fmt_rate(bare.rate_client)} "
        f"| {fmt_rate(onnxq.rate_client)} | {ratio_client:.2f} |"
    )
    for q in (50, 99):
        b, o = pct(bare.latency_available, q), pct(onnxq.latency_available, q)
        add(f"| latency p{q}, submit → result available | {ms(b)} | {ms(o)} | {o / b:.2f} |")
    for q in (50, 99):
        b, o = pct(bare.latency_client, q), pct(onnxq.latency_client, q)
        add(f"| latency p{q}, submit → client has it | {ms(b)} | {ms(o)} | {o / b:.2f} |")
    add(f"| failed jobs | {bare.errors} | {onnxq.errors} | |")
    bare_cpu = sum(bare.cpu_ms_per_job().values())
    onnxq_cpu = sum(onnxq.cpu_ms_per_job().values())
    add(
        f"| CPU per job, all processes incl. client | {bare_cpu:.2f} ms | {onnxq_cpu:.2f} ms "
        f"| {onnxq_cpu / bare_cpu:.2f} |"
    )
    add("")
    single = results["raw_single"]
    add("")
    add(
        "For scale: `session.run` on one row in-process costs "
        f"{single['per_call_s'] * 1e6:.0f} µs ({fmt_rate(single['calls_per_s'])} rows/s on one "
        "core), measured before both runs."
    )
    add("")
    add(
        "CPU used during each measured run, per process group (ms of CPU per job, and share of "
        f"the {m['nproc']} cores over the run):"
    )
    add("")
    add("| run | process group | CPU ms / job | share of machine |")
    add("|---|---|---:|---:|")
    for phase in (bare, onnxq):
        assert phase.cpu is not None
        capacity = phase.cpu.wall * (os.cpu_count() or 1)
        for name, used in phase.cpu.used.items():
            add(f"| {phase.name} | {name} | {used * 1000 / phase.ok:.2f} | {used / capacity:.0%} |")
        total = sum(phase.cpu.used.values())
        add(
            f"| {phase.name} | **all of it** | **{total * 1000 / phase.ok:.2f}** "
            f"| **{total / capacity:.0%}** |"
        )
        other = phase.cpu.other
        add(
            f"| {phase.name} | other processes on the machine (noise) | "
            f"{other * 1000 / phase.ok:.2f} | {other / capacity:.0%} |"
        )
    add("")
    add(
        "Redis commands per job during each measured run (`INFO commandstats`; every command is a "
        "round trip or part of a pipelined one):"
    )
    add("")
    add("| run | commands / job | the most frequent, per job |")
    add("|---|---:|---|")
    for phase in (bare, onnxq):
        assert phase.cpu is not None
        calls = phase.cpu.redis_calls
        top = ", ".join(
            f"{name.upper()} {count / phase.ok:.1f}"
            for name, count in calls.most_common(8)
            if count > 0
        )
        add(f"| {phase.name} | {sum(calls.values()) / phase.ok:.1f} | {top} |")
    add("")
    split = results.get("gateway_split")
    if split:
        add(
            f"Gateway CPU per request, measured separately: a poll of an ended single-row job "
            f"costs {split['poll_ms']:.2f} ms of gunicorn-worker CPU ({split['polls']:,} polls "
            f"from {CLIENT_THREADS} threads); the measured run made "
            f"{split['polls_per_job']:.2f} polls per job, which leaves ≈{split['submit_ms']:.2f} "
            "ms per submit."
        )
        add("")
    e = onnxq.extra
    add("onnxq per-job breakdown (medians; p99 in brackets):")
    add("")
    add("| step | p50 | p99 |")
    add("|---|---:|---:|")
    breakdown = [
        ("submit: POST → 202 at the client", "submit_http"),
        ("queued: submitted_at → started_at", "queued"),
        ("running: started_at → finished_at (whole micro-batch)", "running"),
    ]
    for label, key in breakdown:
        add(f"| {label} | {ms(pct(e[key], 50))} | {ms(pct(e[key], 99))} |")
    add(f"| polls per job | {statistics.fmean(e['polls']):.2f} (mean) | {max(e['polls'])} (max) |")
    add("")
    batches = results["batches"]
    if batches:
        add(
            f"Worker micro-batches (from the worker's `job` events, field `batch_jobs`): "
            f"{batches['jobs']:,} jobs in ≈{batches['batches']:,} batches, "
            f"{batches['mean_per_batch']:.1f} jobs per batch on average, largest "
            f"{batches['max']}; a job's batch had {batches['job_weighted_mean']:.1f} jobs on "
            "average."
        )
        add("")
        add(
            "| batch_jobs | "
            + " | ".join(
                f"{lo}" if lo == hi else (f"{lo}-{hi}" if hi < 10**9 else f"≥{lo}")
                for lo, hi, _ in batches["buckets"]
            )
            + " |"
        )
        add("|---|" + "---:|" * len(batches["buckets"]))
        add("| jobs | " + " | ".join(f"{c:,}" for *_, c in batches["buckets"]) + " |")
        add("")
    large = results["large"]
    rows = results["rows"]
    onnxq_rate = rows / large["total"]
    raw_times = results["raw_bulk"]
    raw_rate = rows / statistics.median(raw_times)
    large_ratio = onnxq_rate / raw_rate
    add(f"### 2. One {rows:,}-row job through onnxq vs raw onnxruntime on the same rows")
    add("")
    add(
        f"onnxq: submit (a {results['body_mb']:.1f} MB JSON body, serialised before the clock "
        "starts) → poll every 20 ms → the response with the result received. Raw: "
        "`session.run` on the whole float32 matrix in this process (median of "
        f"{len(raw_times)}: " + ", ".join(f"{t:.3f} s" for t in raw_times) + "), run right after."
    )
    add("")
    add("| | seconds | rows/s |")
    add("|---|---:|---:|")
    add(f"| onnxq, submit → result received | {large['total']:.2f} | {fmt_rate(onnxq_rate)} |")
    add(
        f"| raw onnxruntime `session.run` | {statistics.median(raw_times):.3f} "
        f"| {fmt_rate(raw_rate)} |"
    )
    add(f"| **onnxq ÷ raw** | | **{large_ratio:.3f}** |")
    add("")
    add(f"Target onnxq ÷ raw ≥ 0.5: {large_ratio:.3f} → {verdict(large_ratio >= 0.5)}.")
    add("")
    floor = results["json_floor"]
    add(
        "For scale, in this process on the same body: `json.loads` "
        f"{floor['json_loads']:.3f} s"
        + (f", `orjson.loads` {floor['orjson_loads']:.3f} s" if "orjson_loads" in floor else "")
        + f", the list → float32 matrix {floor['to_matrix']:.3f} s: parsing the JSON request "
        f"once already takes {floor['json_loads'] / statistics.median(raw_times):.1f}x as long as "
        "the inference."
    )
    add("")
    add(
        "Where the onnxq time goes (client clock for HTTP, the job document's timestamps for the "
        "rest; same machine clock):"
    )
    add("")
    add("| step | seconds | share |")
    add("|---|---:|---:|")
    steps = [
        ("submit: POST → 202 (HTTP + validation + enqueue)", "submit_http"),
        ("  of which: body read, parsed and validated (→ `submitted_at`)", "validate"),
        ("  of which: job record + Celery message + 202 (`submitted_at` → 202)", "enqueue"),
        ("queued: `submitted_at` → `started_at`", "queued"),
        ("running: `started_at` → `finished_at`", "running"),
        ("result stored and seen by a poll: `finished_at` → last poll sent", "store_and_detect"),
        ("fetch the result: last GET", "fetch"),
    ]
    for label, key in steps:
        add(f"| {label} | {large[key]:.3f} | {large[key] / large['total']:.0%} |")
    add(f"| **total** | **{large['total']:.3f}** | |")
    add("")
    add(
        f"(`queued` overlaps the end of `submit`: the worker can start before the 202 is "
        f"received. The result response was {large['response_bytes'] / 2**20:.1f} MB; the client "
        f"took another {large['client_parse']:.3f} s to parse it, not counted above.)"
    )
    add("")
    add("### 3. Profiles (py-spy)")
    add("")
    prof = results["profile_single"]
    add(
        f"Single-row load, a separate run right after the measured one: {PROFILE_SECONDS} s of "
        f"`py-spy record --rate {PROFILE_RATE} --nonblocking --format raw` on each gunicorn "
        "worker, "
        "each Celery prefork child and the Celery main process, under the same client load "
        f"({fmt_rate(prof['rate'])} jobs/s under the profiler vs {fmt_rate(onnxq.rate_client)} "
        "without). Shares are of the samples in which a thread was running *or runnable* (py-spy "
        "skips threads blocked in a system call), summed over the processes of a group. With "
        "~10 busy threads on 2 cores a thread woken by I/O often waits for a core, and that wait "
        "is charged to the frame that did the I/O: frames like `_read_from_socket` (a Redis "
        "reply), `write`/`PollableMethodQueue.defer` (gunicorn) or `_worker`/`select` measure "
        '*round trips and thread hand-offs*, not only CPU. "Self" is the innermost Python '
        'frame (C code such as `session.run` counts for its Python caller); "inclusive" counts '
        "every sample with that frame anywhere on the stack."
    )
    add("")
    add("CPU busy during the profile window (from /proc):")
    add("")
    add("| process group | CPU ms / job | share of machine |")
    add("|---|---:|---:|")
    meter: CpuMeter = prof["cpu"]
    capacity = meter.wall * (os.cpu_count() or 1)
    for name, used in meter.used.items():
        add(f"| {name} | {used * 1000 / max(prof['jobs'], 1):.2f} | {used / capacity:.0%} |")
    other_ms = meter.other * 1000 / max(prof["jobs"], 1)
    add(
        f"| other processes on the machine (noise) | {other_ms:.2f}"
        f" | {meter.other / capacity:.0%} |"
    )
    add("")
    for profile in prof["profiles"]:
        add_profile(add, profile)
    if results.get("profile_large"):
        add(
            f"Profile of a second {rows:,}-row job (py-spy from submit until the result was "
            f"fetched, {results['profile_large_seconds']:.1f} s):"
        )
        add("")
        for profile in results["profile_large"]:
            add_profile(add, profile)
    add("### 4. Reading (generated from the numbers above)")
    add("")
    for point in results["reading"]:
        add(f"- {point}")
    add("")
    return "\n".join(lines)


def add_profile(add: Callable[[str], None], profile: Profile) -> None:
    add(f"#### {profile.label}")
    add("")
    add(
        f"{profile.samples:,} samples ("
        + ", ".join(f"{k}: {v:,}" for k, v in profile.per_process.items())
        + ")."
    )
    add("")
    if not profile.samples:
        return
    add("| # | self: function | file | share |")
    add("|---:|---|---|---:|")
    for i, (name, path, share) in enumerate(profile.self_top, 1):
        add(f"| {i} | `{name}` | {path} | {share:.1%} |")
    add("")
    if profile.project_inclusive:
        add("| # | inclusive, this repo's code: function | file | share |")
        add("|---:|---|---|---:|")
        for i, (name, path, share) in enumerate(profile.project_inclusive, 1):
            add(f"| {i} | `{name}` | {path} | {share:.1%} |")
    else:
        add("(None of this repo's functions runs in this process beyond its entry point.)")
    add("")
    add("Self time by package: " + ", ".join(f"{k} {v:.0%}" for k, v in profile.by_package) + ".")
    add("")


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


def write_report(path: Path, block: str) -> None:
    generated = f"{REPORT_BEGIN}\n\n{block}\n{REPORT_END}\n"
    if path.exists():
        text = path.read_text()
        if REPORT_BEGIN in text and REPORT_END in text:
            head, rest = text.split(REPORT_BEGIN, 1)
            _, tail = rest.split(REPORT_END, 1)
            tail = tail.lstrip("\n")
            path.write_text(head + generated + ("\n" + tail if tail else ""))
            return
        path.write_text(text.rstrip("\n") + "\n\n" + generated)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "# Benchmarks\n\nGenerated by `bench/throughput.py`; the block below is replaced on each "
        "run.\n\n" + generated
    )


# --------------------------------------------------------------------------- main


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
    parser.add_argument(
        "--output",
        type=Path,
        default=ROOT / "docs" / "benchmarks.md",
        help="report to write (its generated block is replaced)",
    )
    parser.add_argument(
        "--model-cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "onnxq-bench-model",
        help="where the model is built once and reused",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    parser.add_argument(
        "--no-large-profile", action="store_true", help="skip the profiled second large job"
    )
    return parser.parse_args(argv)


def _raise_on_sigterm(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    # Ctrl-C must stop everything even when started from a shell that ignores SIGINT.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    script_started = time.monotonic()
    results: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join([".venv/bin/python", "bench/throughput.py", *sys.argv[1:]]),
        "machine": machine(),
        "versions": versions(),
        "git": git_state(),
        "rows": args.rows,
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
    model_path = model_dir / MODEL_NAME / "1" / "model.onnx"
    results["model_kb"] = model_path.stat().st_size / 1024
    data = breast_cancer()
    rows = data.tolist()
    results["raw_single"] = raw_single_row(model_path, data, 3000)

    redis = RedisServer(free_port(), workdir / "redis", appendonly=True)
    redis.start()
    cleanup.callback(redis.stop)
    assert redis.process is not None
    redis_process = psutil.Process(redis.process.pid)
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
        bare = run_bare(f"{base}/1", model_path, rows, args.jobs, bare_dir, redis_process)
        say(f"pair {rep + 1}/{args.repeat}: bare Celery {bare.rate_available:,.0f} jobs/s")
        stack = start_onnxq(f"{base}/0", model_dir, onnxq_dir)
        cleanup.callback(stack.stop)
        pair = measure_onnxq(stack, rows, args.jobs, redis.url, redis_process)
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
    say(f"profiling the single-row path for {PROFILE_SECONDS} s ...")
    stop = threading.Event()
    profile_traces: list[JobTrace] = []

    def profiled_load() -> None:
        profile_traces.extend(onnxq_load(stack.port, rows, None, stop)[0])

    loader = threading.Thread(target=profiled_load, daemon=True)
    loader.start()
    time.sleep(1.0)
    files = {name: workdir / f"profile-single-{name}.txt" for name in profile_targets(stack)}
    spies: list[subprocess.Popen[bytes]] = []
    cleanup.callback(stop_pyspy, spies)
    for name, pid in profile_targets(stack).items():
        spies.append(start_pyspy(pid, files[name], PROFILE_SECONDS))
    reaped_before = os.times()  # py-spy's CPU shows up here once it has exited and been reaped
    prof_meter = CpuMeter(onnxq_groups(stack, redis_process)).start()
    prof_started = now()
    for spy in spies:
        spy.wait(PROFILE_SECONDS + 30)
    prof_meter.stop()
    reaped = os.times()
    pyspy_cpu = (
        reaped.children_user
        + reaped.children_system
        - reaped_before.children_user
        - reaped_before.children_system
    )
    prof_meter.used["py-spy (the profiler itself)"] = pyspy_cpu
    prof_meter.other = max(0.0, prof_meter.other - pyspy_cpu)
    prof_ended = now()
    stop.set()
    loader.join(120)
    in_window = [
        t
        for t in profile_traces
        if t.status == "succeeded" and prof_started <= t.finished_at <= prof_ended
    ]
    results["profile_single"] = {
        "profiles": grouped_profiles("single-row jobs", files),
        "cpu": prof_meter,
        "jobs": len(in_window),
        "rate": len(in_window) / (prof_ended - prof_started),
    }

    # 4. the large job vs raw onnxruntime, back to back
    rng = np.random.default_rng(0)
    big = data[rng.integers(0, len(data), size=args.rows)]
    body = json.dumps({"instances": big.tolist()}).encode()
    results["body_mb"] = len(body) / 2**20
    say(f"onnxq: one {args.rows:,}-row job ({results['body_mb']:.1f} MB) ...")
    results["large"] = large_job(stack.port, body, args.rows)
    say(f"onnxq: {args.rows / results['large']['total']:,.0f} rows/s")
    session = make_session(model_path)
    results["raw_bulk"] = raw_bulk(session, big.astype(np.float32))
    say(f"raw onnxruntime: {args.rows / statistics.median(results['raw_bulk']):,.0f} rows/s")
    results["json_floor"] = json_floor(body)

    if not args.no_large_profile:
        say("profiling a second large job ...")
        files = {name: workdir / f"profile-large-{name}.txt" for name in profile_targets(stack)}
        spies = []
        cleanup.callback(stop_pyspy, spies)
        for name, pid in profile_targets(stack).items():
            spies.append(start_pyspy(pid, files[name], None))
        time.sleep(0.5)  # let py-spy attach
        profiled = large_job(stack.port, body, args.rows)
        stop_pyspy(spies)
        results["profile_large"] = grouped_profiles(f"{args.rows:,}-row job", files)
        results["profile_large_seconds"] = profiled["total"]

    stack.stop()
    results["script_seconds"] = time.monotonic() - script_started
    results["reading"] = reading(results)
    write_report(args.output, render(results))
    say(f"wrote {args.output}")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; every process started here was stopped", file=sys.stderr)
        sys.exit(130)
