"""One measured phase of bench/closed_loop.py: N client processes (bench/closed_loop_client.py)
against one side, started and warmed up first, then released together by a go file; the
servers' CPU by process group over the phase (bench/meters.py), the clients' own; and what the
phase's jobs say (rate, latency, finished_at → answer)."""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from bench.job_client import iso_ts
from bench.meters import CpuMeter, pct
from bench.processes import ROOT, Service, stop_all

START_TIMEOUT = 180.0  # 16 interpreters importing Celery on a busy 2-core machine


@dataclass
class Phase:
    """What one phase measured; `jobs` are (submit, answer, finished_at, polls, status)."""

    side: str
    mode: str
    clients: int
    go: float
    deadline: float
    jobs: list[tuple[float, float, float, int, str]]
    errors: list[str]
    client_cpu: float  # as the clients measured themselves (getrusage), go → last answer
    meter: CpuMeter
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> list[tuple[float, float, float, int, str]]:
        return [j for j in self.jobs if j[4] == "succeeded"]

    @property
    def counted(self) -> list[tuple[float, float, float, int, str]]:
        """Closed loop: the jobs answered inside the window; burst: all of them."""
        if self.mode == "burst":
            return self.ok
        return [j for j in self.ok if j[1] <= self.deadline]

    @property
    def rate(self) -> float:
        if self.mode == "burst":
            return len(self.ok) / (max(j[1] for j in self.ok) - self.go)
        return len(self.counted) / (self.deadline - self.go)

    def latency(self, q: float) -> float:
        return pct([j[1] - j[0] for j in self.counted], q)

    def answer_after_finish(self) -> list[float]:
        """Seconds from each job's finished_at to the client holding the answer (onnxq only)."""
        return [j[1] - j[2] for j in self.counted if j[2] == j[2]]

    def polled_share(self) -> float:
        """Share of jobs the submit's answer did not end (they needed a waiting poll)."""
        return sum(1 for j in self.counted if j[3]) / max(1, len(self.counted))

    def cpu_ms_per_job(self) -> dict[str, float]:
        """Milliseconds of CPU per job by process group, the clients included (from /proc, like
        the servers); every job the phase ran counts (the meter ran until the last in-flight one
        was answered)."""
        n = max(1, len(self.ok))
        return {name: seconds * 1000 / n for name, seconds in self.meter.used.items()}

    @property
    def noise(self) -> float:
        """Share of the machine's cores that processes outside the phase used meanwhile."""
        return self.meter.other / self.meter.capacity


def _wait_files(paths: list[Path], clients: list[Service], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not all(p.exists() for p in paths):
        dead = [c for c in clients if not c.alive() and not Path(c.env["BENCH_OUT"]).exists()]
        if dead:
            raise RuntimeError(f"{dead[0].name} exited early; see {dead[0].log_path}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.02)


def run_phase(
    side: str,
    mode: str,
    *,
    clients: int,
    rows: list[list[float]],
    workdir: Path,
    groups: dict[str, list[psutil.Process]],
    redis_url: str,
    port: int | None = None,
    seconds: float = 10.0,
    jobs: int = 0,
    warmup: int = 5,
    env: dict[str, str] | None = None,
    collect: str = "many",
) -> Phase:
    """Start `clients` client processes, warm them up, release them, measure, collect."""
    workdir.mkdir(parents=True, exist_ok=True)
    go = workdir / "go"
    child_env = {**os.environ, **(env or {}), "BENCH_REDIS_URL": redis_url}
    child_env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])
    )
    procs, ready, outs = [], [], []
    share, extra_jobs = divmod(jobs, clients)
    for i in range(clients):
        config = {
            "side": side,
            "mode": mode,
            "port": port,
            "rows": rows,
            "offset": i * 97,
            "warmup": warmup,
            "collect": collect,
            "jobs": share + (1 if i < extra_jobs else 0),
            "ready": str(workdir / f"ready-{i}"),
            "go": str(go),
            "out": str(workdir / f"out-{i}.json"),
        }
        path = workdir / f"client-{i}.json"
        path.write_text(json.dumps(config))
        command = [sys.executable, "-m", "bench.closed_loop_client", str(path)]
        service = Service(
            f"client-{i}", command, {**child_env, "BENCH_OUT": config["out"]}, workdir / f"c{i}.log"
        )
        procs.append(service.start())
        ready.append(Path(config["ready"]))
        outs.append(Path(config["out"]))
    try:
        _wait_files(ready, procs, START_TIMEOUT, f"{clients} {side} clients to warm up")
        clients_proc = [psutil.Process(service.pid) for service in procs]
        meter = CpuMeter({**groups, "client": clients_proc}, redis_url).start()
        started = time.time()
        deadline = started + seconds
        tmp = go.with_suffix(".tmp")
        tmp.write_text(repr(deadline))
        tmp.rename(go)
        time.sleep(seconds if mode == "closed" else 0.0)
        _wait_files(outs, procs, seconds + 300, f"the {side} clients' results")
        meter.stop()
    finally:
        stop_all(procs, timeout=10)
    results = [json.loads(p.read_text()) for p in outs]
    jobs_done = [
        (j[0], j[1], iso_ts(j[2]) if j[2] else float("nan"), j[3], j[4])
        for r in results
        for j in r["jobs"]
    ]
    return Phase(
        side=side,
        mode=mode,
        clients=clients,
        go=started,
        deadline=deadline,
        jobs=jobs_done,
        errors=[e for r in results for e in r["errors"]],
        client_cpu=sum(r["cpu_s"] for r in results),
        meter=meter,
    )
