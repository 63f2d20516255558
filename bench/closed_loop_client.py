"""One client of bench/closed_loop.py, run as its own OS process (one per client, both sides):

    python -m bench.closed_loop_client CONFIG.json

CONFIG names the side (`onnxq`: one keep-alive http.client connection; `bare`: the Celery app of
bench/bare_celery.py), the mode (`closed`: one job at a time until the deadline; `burst`: submit
`jobs`, then collect them all), the rows, and two paths: the go file, whose appearance starts the
measured phase (it holds the deadline), and the output file. Before the go file the client warms
up (connections open, a few jobs through). It reports its own CPU (getrusage, every thread) from
go to its last answer, and stays alive after writing its output until it is stopped, so that the
benchmark reads its CPU from /proc as well.

onnxq: the submit carries `Prefer: wait=30`; a job not ended in that answer is waited for with
`GET /v1/jobs/<id>?wait=30` until it has. bare Celery: `task.delay(row).get()`.

A burst collects its results (`collect`) `many` at a time, each side as its API offers: onnxq
`GET /v1/jobs?ids=<up to 100 ids>&wait=30`, bare Celery `ResultSet(<up to 100>).join_native()`;
or `each` on its own (onnxq `GET /v1/jobs/<id>?wait=30`, bare `get()`). Every job of a group is
answered when the group's answer arrives.
"""

from __future__ import annotations

import http.client
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

WAIT = 30
GROUP = 100  # results collected at once in a burst (`collect: many`): onnxq's most ids per poll
ENDED = {"succeeded", "failed", "cancelled"}
MODEL = "breast-cancer"


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Onnxq:
    """A job = POST with Prefer: wait, then waiting polls until it has ended."""

    def __init__(self, port: int):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT + 30)

    def _call(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Any:
        self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        data = response.read()
        if response.status not in (200, 202):
            raise RuntimeError(f"{method} {path}: HTTP {response.status} {data[:200]!r}")
        return json.loads(data)

    def submit(self, row: list[float], wait: bool) -> dict[str, Any]:
        body = json.dumps({"instances": [row]}).encode()
        headers = {"Content-Type": "application/json"}
        if wait:
            headers["Prefer"] = f"wait={WAIT}"
        return self._call("POST", f"/v1/models/{MODEL}/jobs", body, headers)

    def until_ended(self, document: dict[str, Any]) -> tuple[dict[str, Any], int]:
        polls = 0
        while document["status"] not in ENDED:
            document = self._call("GET", f"/v1/jobs/{document['job_id']}?wait={WAIT}", None, {})
            polls += 1
        return document, polls

    def job(self, row: list[float]) -> tuple[float, float, str, int, str]:
        """(submit time, answer time, finished_at, waiting polls, status)."""
        started = time.time()
        document, polls = self.until_ended(self.submit(row, wait=True))
        return started, time.time(), document.get("finished_at") or "", polls, document["status"]

    def burst(
        self, rows: list[list[float]], collect: str
    ) -> list[tuple[float, float, str, int, str]]:
        submitted = []
        for row in rows:
            submitted.append((time.time(), self.submit(row, wait=False)))
        out = []
        if collect == "each":
            for started, document in submitted:
                document, polls = self.until_ended(document)
                finished = document.get("finished_at") or ""
                out.append((started, time.time(), finished, polls, document["status"]))
            return out
        for at in range(0, len(submitted), GROUP):
            group = submitted[at : at + GROUP]
            documents, polls = self.until_all_ended([document for _, document in group])
            answered = time.time()
            for (started, _), document in zip(group, documents, strict=True):
                finished = document.get("finished_at") or ""
                out.append((started, answered, finished, polls, document["status"]))
        return out

    def until_all_ended(self, documents: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
        """The documents of these jobs once all have ended; (documents, polls it took)."""
        by_id = {document["job_id"]: document for document in documents}
        polls = 0
        while running := [i for i, document in by_id.items() if document["status"] not in ENDED]:
            answer = self._call("GET", f"/v1/jobs?ids={','.join(running)}&wait={WAIT}", None, {})
            by_id.update((document["job_id"], document) for document in answer["jobs"])
            if answer["missing"]:
                raise RuntimeError(f"jobs missing: {answer['missing']}")
            polls += 1
        return [by_id[document["job_id"]] for document in documents], polls

    def close(self) -> None:
        self.conn.close()


class Bare:
    """A job = `predict.delay(row).get()` on bench/bare_celery.py's app."""

    def __init__(self) -> None:
        from bench import bare_celery  # reads BENCH_REDIS_URL from the environment

        self.app = bare_celery.app
        self.task = bare_celery.predict

    def job(self, row: list[float]) -> tuple[float, float, str, int, str]:
        started = time.time()
        self.task.delay(row).get(timeout=WAIT + 30)
        return started, time.time(), "", 0, "succeeded"

    def burst(
        self, rows: list[list[float]], collect: str
    ) -> list[tuple[float, float, str, int, str]]:
        from celery.result import ResultSet

        submitted = [(time.time(), self.task.delay(row)) for row in rows]
        out = []
        if collect == "each":
            for started, result in submitted:
                result.get(timeout=120)
                out.append((started, time.time(), "", 0, "succeeded"))
            return out
        for at in range(0, len(submitted), GROUP):
            group = submitted[at : at + GROUP]
            ResultSet([result for _, result in group]).join_native(timeout=120)
            answered = time.time()
            out += [(started, answered, "", 0, "succeeded") for started, _ in group]
        return out

    def close(self) -> None:
        self.app.close()


def wait_for_go(go: Path) -> float:
    """Block until the go file exists; the deadline (epoch seconds) it holds."""
    while True:
        try:
            text = go.read_text()
        except FileNotFoundError:
            time.sleep(0.002)
            continue
        if text.strip():
            return float(text)
        time.sleep(0.002)


def run(config: dict[str, Any]) -> dict[str, Any]:
    rows: list[list[float]] = config["rows"]
    client: Onnxq | Bare = Onnxq(config["port"]) if config["side"] == "onnxq" else Bare()
    for i in range(config["warmup"]):
        client.job(rows[i % len(rows)])
    Path(config["ready"]).write_text("ready")
    deadline = wait_for_go(Path(config["go"]))
    cpu_before = cpu_seconds()
    jobs: list[tuple[float, float, str, int, str]] = []
    errors: list[str] = []
    if config["mode"] == "burst":
        burst_rows = [rows[i % len(rows)] for i in range(config["jobs"])]
        jobs = client.burst(burst_rows, config.get("collect", "many"))
    else:
        i = config["offset"]
        while time.time() < deadline:
            try:
                jobs.append(client.job(rows[i % len(rows)]))
            except Exception as exc:  # counted and reported, the loop goes on
                errors.append(repr(exc)[:300])
                if len(errors) > 100:
                    break
            i += 1
    cpu = cpu_seconds() - cpu_before
    client.close()
    return {"cpu_s": cpu, "jobs": jobs, "errors": errors, "pid": os.getpid()}


def main() -> None:
    config_path = Path(sys.argv[1])
    config = json.loads(config_path.read_text())
    result = run(config)
    out = Path(config["out"])
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    tmp.rename(out)
    # Stay until stopped (SIGTERM), so that the benchmark reads this process's CPU from /proc too.
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main()
