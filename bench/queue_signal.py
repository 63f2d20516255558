"""The scaling signal under a burst (issue 19): GET /v1/queue each second while workers drain it.

    .venv/bin/python bench/queue_signal.py [--workers 1 2 3] [--jobs 150] [--rows 100000]

Per worker count: its own redis-server, a gunicorn gateway and N `python -m worker` of one pool
process each, as the Kubernetes worker pods run them (bench/stack.py), no beat. After a warm-up
job, a burst of `--jobs` jobs of `--rows` rows (.npy bodies) is submitted from a few threads while
a sampler reads GET /v1/queue every second until `outstanding` is 0 again; every job's document is
then checked to have succeeded. Reports outstanding, oldest age and the replicas KEDA's
ScaledObject (its target and bounds read from deploy/kubernetes/components/keda) would ask for on
one time grid, and each run's drain time, in docs/benchmarks.md and docs/kubernetes.md.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import psutil
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.model import MODEL_NAME, add_model_cache_option, breast_cancer, prepare_model
from bench.processes import ROOT, Service, own_redis, say, stop_all, stop_on_signals
from bench.report import add_report_option, run_details, table, write_section
from bench.stack import local_url, service_env, start_pod_workers, wait_for_gateway
from onnxq.client import Client
from onnxq.client.transport import HttpOptions, Transport
from onnxq.devtools.processes import gateway_command
from onnxq.devtools.redis_server import free_port
from onnxq.devtools.waiting import wait_until
from onnxq.settings import Settings

OWNER = "bench/queue_signal.py"
SCALED_OBJECT = ROOT / "deploy" / "kubernetes" / "components" / "keda" / "scaled-object.yaml"
KUBERNETES_DOC = ROOT / "docs" / "kubernetes.md"
SAMPLE_SECONDS = 1.0
SUBMIT_THREADS = 4
MAX_TABLE_ROWS = 25
MISSING = "-"  # a reading the gateway did not answer
QUEUE_LIST = Settings.model_fields["queue_name"].default  # kombu keeps its messages in this list


@dataclass(frozen=True)
class Scaling:
    """What the ScaledObject asks for: its metrics-api trigger's target and its bounds."""

    target: float
    activation: float
    min_replicas: int
    max_replicas: int

    def replicas(self, outstanding: int) -> int:
        """The HPA's aim for this count (AverageValue: ceil(count / target)) within the bounds;
        min_replicas when the count is not above the activation value."""
        if outstanding <= self.activation:
            return self.min_replicas
        wanted = math.ceil(outstanding / self.target)
        return min(self.max_replicas, max(self.min_replicas, 1, wanted))


def read_scaling(path: Path = SCALED_OBJECT) -> Scaling:
    import yaml

    documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
    spec = next(d for d in documents if d["kind"] == "ScaledObject")["spec"]
    trigger = next(t for t in spec["triggers"] if t["type"] == "metrics-api")["metadata"]
    activation = float(trigger.get("activationTargetValue", 0))  # KEDA's defaults, if absent
    bounds = int(spec.get("minReplicaCount", 0)), int(spec.get("maxReplicaCount", 100))
    return Scaling(float(trigger["targetValue"]), activation, *bounds)


@dataclass
class Sample:
    tick: int  # the sample due at tick * SAMPLE_SECONDS after the burst's start
    late: float  # seconds after that moment its answer came
    outstanding: int | None  # None: the gateway did not answer
    oldest_age: float | None
    listed: int | None = None  # LLEN of the predict queue's list, read just after


class Sampler(threading.Thread):
    """GET /v1/queue every SAMPLE_SECONDS from `started` (a monotonic time), on a fixed schedule,
    until a reading taken after `submitted` was set says 0; each time also the LLEN of Celery's
    list of predict messages, what KEDA's `redis` list scaler would read instead."""

    def __init__(self, url: str, redis_url: str, started: float):
        super().__init__(daemon=True)
        self.queue = Transport(url, options=HttpOptions(timeout=5, retries=0))
        self.redis = redis.Redis.from_url(redis_url, socket_timeout=5)
        self.started = started
        self.submitted = threading.Event()
        self.stopped = threading.Event()
        self.samples: list[Sample] = []

    def run(self) -> None:
        tick = 0
        while not self.stopped.wait(max(0.0, self.due(tick) - time.monotonic())):
            after_submit = self.submitted.is_set()
            try:
                body = self.queue.request("GET", "/v1/queue").body
                listed = int(self.redis.llen(QUEUE_LIST))
                outstanding, age = int(body["outstanding"]), float(body["oldest_age_seconds"])
            except Exception:  # counted as a missing reading, never the end of the sampling
                outstanding, age, listed = None, None, None
            late = time.monotonic() - self.due(tick)
            self.samples.append(Sample(tick, late, outstanding, age, listed))
            if after_submit and outstanding == 0:
                self.stopped.set()
            tick += 1

    def due(self, tick: int) -> float:
        return self.started + tick * SAMPLE_SECONDS


@dataclass
class Run:
    workers: int
    cpu_before: float  # the machine's CPU use (%, all cores) in the 2 s before the run
    cpu_during: float = 0.0  # and from the burst's start until the count was 0 again
    submit_seconds: float = 0.0
    drain_seconds: float = 0.0  # burst start -> the last job's finished_at
    samples: list[Sample] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)

    def reading(self, tick: int) -> Sample | None:
        """The sample of `tick`; after the last one (the count was 0) a 0 reading."""
        if tick < len(self.samples):
            return self.samples[tick]
        return Sample(tick, 0.0, 0, 0.0) if self.samples else None


def measure(workers: int, source: Path, jobs: int, model_dir: Path, timeout: float) -> Run:
    """One burst of `jobs` jobs of the file `source` against `workers` one-process workers."""
    run = Run(workers, psutil.cpu_percent(interval=2))
    with (
        tempfile.TemporaryDirectory(prefix="onnxq-queue-signal-") as work,
        own_redis(Path(work) / "redis") as server,
    ):
        workdir, port = Path(work), free_port()
        env = service_env(server.url, model_dir, workdir / "predictions", port)
        gateway = Service("gateway", gateway_command(), env, workdir / "gateway.log", port=port)
        services = [gateway.start()]
        try:
            wait_for_gateway(gateway)
            services += start_pod_workers(env, workdir, workers)
            url = local_url(port)
            Client(url).model(MODEL_NAME).submit(source).wait(timeout)  # warm-up
            clients = threading.local()

            def submit(_: int) -> str:
                if not hasattr(clients, "model"):
                    clients.model = Client(url, timeout=120).model(MODEL_NAME)
                return clients.model.submit(source).id

            sampler = Sampler(url, server.url, time.monotonic())
            burst_start = time.time()
            psutil.cpu_percent()  # the start of cpu_during
            sampler.start()
            try:
                with ThreadPoolExecutor(SUBMIT_THREADS) as pool:
                    ids = list(pool.map(submit, range(jobs)))
                run.submit_seconds = time.monotonic() - sampler.started
                sampler.submitted.set()
                say(f"{workers} worker(s): {jobs} jobs submitted in {run.submit_seconds:.1f} s")
                wait_until(sampler.stopped.is_set, timeout, "outstanding to be back to 0")
                run.cpu_during = psutil.cpu_percent()
            finally:
                sampler.stopped.set()
                sampler.join(10)
            run.samples = sampler.samples
            client = Client(url)
            documents = [client.job(job_id).document for job_id in ids]
            run.statuses = Counter(str(d["status"]) for d in documents)
            ended = [datetime.fromisoformat(d["finished_at"]).timestamp() for d in documents
                     if d.get("finished_at")]  # fmt: skip
            run.drain_seconds = max(ended) - burst_start if ended else math.nan
        finally:
            stop_all(services)
    say(f"{workers} worker(s): drained in {run.drain_seconds:.1f} s, {dict(run.statuses)}")
    return run


def render_table(runs: list[Run], scaling: Scaling, every: int) -> list[str]:
    """The time grid: outstanding, oldest age and KEDA's replicas of each run at each moment."""
    last = max(len(r.samples) for r in runs)
    every = every or max(1, math.ceil(last / MAX_TABLE_ROWS))
    ns = [f"{r.workers} worker{'s' if r.workers > 1 else ''}" for r in runs]
    header = ["time since the burst (s)", *(f"outstanding, {n}" for n in ns),
              *(f"oldest age (s), {n}" for n in ns),
              *(f"KEDA's replicas, {n}" for n in ns)]  # fmt: skip
    rows = []
    for tick in range(0, last + every - 1, every):
        readings = [r.reading(tick) for r in runs]
        counts = [s.outstanding if s else None for s in readings]
        ages = [s.oldest_age if s else None for s in readings]
        keda = [None if c is None else scaling.replicas(c) for c in counts]
        time_cell = f"{tick * SAMPLE_SECONDS:g}"
        rows.append([time_cell, *map(cell, counts), *map(cell, ages), *map(cell, keda)])
    return table(header, "r" * len(header), rows)


def cell(value: float | None) -> str:
    """A count as it is, an age to a tenth of a second; MISSING for no answer."""
    if value is None:
        return MISSING
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def render_summary(runs: list[Run], jobs: int, rows: int) -> list[str]:
    header = ["workers", "submit s", "drained s", "outstanding 0 at s", "list empty from s",
              "peak outstanding", "jobs/s", "rows/s", "not succeeded", "latest reading s",
              "missed readings", "CPU % before / during"]  # fmt: skip
    body = []
    for r in runs:
        zero = next((s.tick for s in r.samples if s.outstanding == 0 and s.tick > 0), None)
        listed = [s.tick for s in r.samples if s.listed]
        failed = jobs - r.statuses.get("succeeded", 0)
        body.append([r.workers, f"{r.submit_seconds:.1f}", f"{r.drain_seconds:.1f}",
                     MISSING if zero is None else f"{zero * SAMPLE_SECONDS:g}",
                     f"{(listed[-1] + 1) * SAMPLE_SECONDS:g}" if listed else MISSING,
                     max((s.outstanding or 0 for s in r.samples), default=0),
                     f"{jobs / r.drain_seconds:.1f}", f"{jobs * rows / r.drain_seconds:,.0f}",
                     f"**{failed}**" if failed else "0", f"{max(s.late for s in r.samples):.2f}",
                     sum(s.outstanding is None for s in r.samples),
                     f"{r.cpu_before:.0f} / {r.cpu_during:.0f}"])  # fmt: skip
    return table(header, "r" * len(header), body)


def render(runs: list[Run], scaling: Scaling, args: argparse.Namespace, details: dict) -> str:
    lines = [
        "## The scaling signal under a burst (issue 19)",
        "",
        f"{details['date']}, `{details['command']}`, {details['machine']['nproc']} x "
        f"{details['machine']['cpu']}, git {details['git']}. Each run: its own redis-server, a "
        "gunicorn gateway (2 workers), N `python -m worker` of one pool process each "
        "(ONNXQ_WORKER_CONCURRENCY=1 as in the Kubernetes worker pods; ONNXQ_JOB_CHUNK_THREADS "
        f"2, its default and the pods'), no beat, all on this machine. After a warm-up job, "
        f"{args.jobs} jobs of {args.rows:,} rows (.npy bodies) submitted from {SUBMIT_THREADS} "
        "threads; `GET /v1/queue` read every second from the burst's start until `outstanding` "
        f"was 0 again. KEDA's replicas: ceil(outstanding / {scaling.target:g}) within "
        f"{scaling.min_replicas}-{scaling.max_replicas} (`{SCALED_OBJECT.relative_to(ROOT)}`), "
        "what the HPA aims at, before its scale-up policy and KEDA's polling interval.",
        "",
        *render_table(runs, scaling, args.every),
        "",
        "Drained: the burst's start to the last job's `finished_at`. Outstanding 0 at: the first "
        f"reading of 0. List empty from: the reading from which LLEN `{QUEUE_LIST}` (Celery's "
        "list of waiting messages, what KEDA's `redis` list scaler reads) stayed 0. Not "
        "succeeded: jobs whose document did not end `succeeded`. Latest reading: the most an "
        "answer came after its second. CPU %: the machine's (100 = every core busy), in the 2 s "
        "before the run and from the burst's start until the count read 0.",
        "",
        *render_summary(runs, args.jobs, args.rows),
    ]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--jobs", type=int, default=150, help="jobs in the burst")
    parser.add_argument("--rows", type=int, default=100_000, help="rows of each job")
    parser.add_argument("--every", type=int, default=0, help="seconds between table rows")
    parser.add_argument("--timeout", type=float, default=900, help="seconds a burst may take")
    parser.add_argument("--no-report", action="store_true", help="print only, write no docs")
    parser.add_argument("--kubernetes-doc", type=Path, default=KUBERNETES_DOC, metavar="PATH")
    add_model_cache_option(parser)
    add_report_option(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stop_on_signals()
    scaling = read_scaling()
    model_dir = prepare_model(args.model_cache)
    details = run_details(OWNER)
    runs = []
    with tempfile.TemporaryDirectory(prefix="onnxq-queue-signal-rows-") as rows_dir:
        source = Path(rows_dir) / "rows.npy"
        data = breast_cancer()
        np.save(source, np.resize(data, (args.rows, data.shape[1])).astype(np.float32))
        for workers in args.workers:
            runs.append(measure(workers, source, args.jobs, model_dir, args.timeout))
    block = render(runs, scaling, args, details)
    print(block)
    if not args.no_report:
        write_section(args.report, OWNER, block)
        head = (f"{details['date']}, `{details['command']}`, {details['machine']['nproc']} "
                "cores, every process on one machine (details: docs/benchmarks.md).")  # fmt: skip
        table_lines = render_table(runs, scaling, args.every)
        write_section(args.kubernetes_doc, OWNER, "\n".join([head, "", *table_lines]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
