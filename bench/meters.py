"""What the benchmarks measure besides their clients' clocks: CPU time by process group (from
/proc, through psutil), Redis commands (INFO commandstats), resident memory, percentiles."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import Counter
from collections.abc import Iterable

import numpy as np
import psutil

from bench.processes import Service


def pct(values: Iterable[float], q: float) -> float:
    """The q-th percentile, NaN for no values."""
    data = list(values)
    return float(np.percentile(data, q)) if data else float("nan")


def process_tree(*services: Service) -> list[psutil.Process]:
    """Each running service and all its descendants."""
    found = []
    for service in services:
        if service.alive():
            found.append(psutil.Process(service.pid))
            found += psutil.Process(service.pid).children(recursive=True)
    return found


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
        """CPU seconds the machine's cores had over the measured wall time."""
        return self.wall * (os.cpu_count() or 1)


def sample_rss(
    procs: list[psutil.Process],
    every: float,
    samples: list[tuple[float, float]],
    stop: threading.Event,
) -> None:
    """Append (seconds since start, MiB of RSS summed over `procs`) every `every` s until `stop`."""
    started = time.monotonic()
    while not stop.is_set():
        total = 0
        for process in procs:
            with contextlib.suppress(psutil.Error):  # a process that just exited
                total += process.memory_info().rss
        samples.append((time.monotonic() - started, total / 2**20))
        stop.wait(every)
