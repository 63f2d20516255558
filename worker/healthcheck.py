"""`python -m worker.healthcheck [--beat]`: a worker (or beat) container's HEALTHCHECK.

Exit 0 healthy, 1 not. Cheap on purpose, since it runs every 30 s beside the worker: it checks
that a Celery worker (`python -m worker` / `onnxq-worker`) runs here with at least one pool
process (with --beat: that `python -m worker.beat` runs), and that Redis answers PING.
`celery inspect ping` would also prove that the consumer loop answers, but it starts a Celery
app and round-trips a broadcast through Redis to every worker of the cluster: seconds of CPU
per check on a small host, multiplied by the number of workers.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from onnxq.devtools.redis_server import redis_answers
from onnxq.settings import Settings

REDIS_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class WorkerProcesses:
    """The Celery main process of this host or container and its pool children."""

    main_pid: int
    pool_pids: tuple[int, ...]


WORKER_MODULE = "worker"
BEAT_MODULE = "worker.beat"


def _runs_module(argv: list[str], module: str) -> bool:
    if argv[1:3] == ["-m", module]:
        return True
    # The worker may also run as the `onnxq-worker` script (directly or by its interpreter).
    return module == WORKER_MODULE and any(Path(arg).name == "onnxq-worker" for arg in argv[:2])


def _read_process(directory: Path) -> tuple[list[str], int] | None:
    """(argv, parent pid) of one /proc/<pid>, or None if it vanished or is unreadable."""
    try:
        argv = directory.joinpath("cmdline").read_bytes().split(b"\0")
        status = directory.joinpath("status").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    parent = next(
        (int(line.split()[1]) for line in status.splitlines() if line.startswith("PPid:")), 0
    )
    return [part.decode(errors="replace") for part in argv if part], parent


def find_worker(proc: Path = Path("/proc"), module: str = WORKER_MODULE) -> WorkerProcesses | None:
    """The main process running `python -m <module>` and its children, found under `proc`."""
    workers: dict[int, int] = {}
    for directory in proc.iterdir():
        if not directory.name.isdigit():
            continue
        process = _read_process(directory)
        if process is not None and _runs_module(process[0], module):
            workers[int(directory.name)] = process[1]
    # Prefork children carry their parent's command line: the main one has a non-worker parent.
    mains = sorted(pid for pid, parent in workers.items() if parent not in workers)
    if not mains:
        return None
    children = tuple(sorted(pid for pid, parent in workers.items() if parent == mains[0]))
    return WorkerProcesses(main_pid=mains[0], pool_pids=children)


def check(settings: Settings, proc: Path = Path("/proc"), beat: bool = False) -> list[str]:
    """Problems found; empty when healthy."""
    problems = []
    module = BEAT_MODULE if beat else WORKER_MODULE
    found = find_worker(proc, module)
    if found is None:
        problems.append(f"no process runs python -m {module}")
    elif not beat and not found.pool_pids:
        problems.append(f"the Celery worker (pid {found.main_pid}) has no pool processes")
    if not redis_answers(settings.redis_url, timeout=REDIS_TIMEOUT_SECONDS):
        problems.append("Redis does not answer PING")
    return problems


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args not in ([], ["--beat"]):
        print("usage: python -m worker.healthcheck [--beat]", file=sys.stderr)
        return 2
    problems = check(Settings(), beat=args == ["--beat"])
    for problem in problems:
        print(f"unhealthy: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
