"""HTTP and log checks for scripts/compose-smoke; standard library only (runs on the host).

    python3 scripts/compose_smoke.py wait-ready <base url> <timeout s>
    python3 scripts/compose_smoke.py submit <base url> <api key> <jobs> <timeout s> <job ids file>
    python3 scripts/compose_smoke.py file-job <base url> <api key> <rows> <timeout s>
    python3 scripts/compose_smoke.py served-by <job ids file> <container log file>...
    python3 scripts/compose_smoke.py slow-clients <base url> <api key> <connections>

Each prints what it found and exits 1 with a message saying what did not happen.
"""

from __future__ import annotations

import array
import json
import socket
import struct
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

MODEL = "breast-cancer"
# The first and another sample of scikit-learn's breast-cancer data set (README.md).
ROWS = [
    [
        17.99,
        10.38,
        122.8,
        1001,
        0.1184,
        0.2776,
        0.3001,
        0.1471,
        0.2419,
        0.07871,
        1.095,
        0.9053,
        8.589,
        153.4,
        0.006399,
        0.04904,
        0.05373,
        0.01587,
        0.03003,
        0.006193,
        25.38,
        17.33,
        184.6,
        2019,
        0.1622,
        0.6656,
        0.7119,
        0.2654,
        0.4601,
        0.1189,
    ],
    [
        13.54,
        14.36,
        87.46,
        566.3,
        0.09779,
        0.08129,
        0.06664,
        0.04781,
        0.1885,
        0.05766,
        0.2699,
        0.7886,
        2.058,
        23.56,
        0.008462,
        0.0146,
        0.02387,
        0.01315,
        0.0198,
        0.0023,
        15.11,
        19.26,
        99.7,
        711.2,
        0.144,
        0.1773,
        0.239,
        0.1288,
        0.2977,
        0.07259,
    ],
]
EXPECTED_LABELS = [0, 1]


class SmokeFailure(Exception):
    """A check did not pass; the message says which and what was seen."""


def _request(url: str, api_key: str = "", body: object = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="GET" if body is None else "POST")
    request.add_header("Content-Type", "application/json")
    if api_key:
        request.add_header("Authorization", f"Bearer {api_key}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def wait_ready(base_url: str, timeout_seconds: float) -> None:
    deadline = time.monotonic() + timeout_seconds
    last = "no answer yet"
    while time.monotonic() < deadline:
        try:
            status, body = _request(f"{base_url}/ready")
            if status == 200:
                print(f"ready: {json.dumps(body)}")
                return
            last = f"{status} {json.dumps(body)}"
        except (OSError, ValueError) as error:
            last = repr(error)
        time.sleep(1)
    raise SmokeFailure(f"{base_url}/ready was not 200 within {timeout_seconds:.0f} s; last: {last}")


def _run_job(base_url: str, api_key: str, deadline: float) -> str:
    status, job = _request(f"{base_url}/v1/models/{MODEL}/jobs", api_key, {"instances": ROWS})
    if status != 202:
        raise SmokeFailure(f"job submit answered {status}: {json.dumps(job)}")
    job_id = job["job_id"]
    while time.monotonic() < deadline:
        status, job = _request(f"{base_url}/v1/jobs/{job_id}", api_key)
        if status == 200 and job["status"] == "succeeded":
            if job["result"]["labels"] != EXPECTED_LABELS:
                raise SmokeFailure(f"job {job_id} labels {job['result']['labels']}")
            return job_id
        if status != 200 or job["status"] in ("failed", "cancelled"):
            raise SmokeFailure(f"job {job_id}: {status} {json.dumps(job)}")
        time.sleep(0.2)
    raise SmokeFailure(f"job {job_id} still {job['status']} at the deadline")


def submit(base_url: str, api_key: str, jobs: int, timeout_seconds: float, ids_file: Path) -> None:
    status, body = _request(f"{base_url}/v1/models/{MODEL}/predict", api_key, {"instances": ROWS})
    if status != 200 or body.get("labels") != EXPECTED_LABELS:
        raise SmokeFailure(f"synchronous predict answered {status}: {json.dumps(body)}")
    print(f"synchronous predict: labels {body['labels']}")
    deadline = time.monotonic() + timeout_seconds
    started = time.monotonic()
    # A few clients at once, as real traffic: jobs queue up and every worker gets some.
    with ThreadPoolExecutor(max_workers=8) as pool:
        job_ids = list(pool.map(lambda _: _run_job(base_url, api_key, deadline), range(jobs)))
    ids_file.write_text("\n".join(job_ids) + "\n")
    elapsed = time.monotonic() - started
    print(f"jobs: {len(job_ids)} submitted through the gateway, all succeeded ({elapsed:.1f} s)")


def _npy(rows: list[list[float]], count: int) -> bytes:
    """A float32 .npy body of `count` rows cycling through `rows` (format 1.0, by hand)."""
    header = f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({count}, {len(rows[0])}), }}"
    header += " " * (-(len(header) + 11) % 64) + "\n"
    values = array.array("f", [v for i in range(count) for v in rows[i % len(rows)]])
    if sys.byteorder != "little":
        values.byteswap()
    lead = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header))
    return lead + header.encode() + values.tobytes()


def file_job(base_url: str, api_key: str, rows: int, timeout_seconds: float) -> None:
    """A large file job: its rows through the blob store on the shared volume, its prediction
    log batch (past 8 MiB) written direct, its result behind a link, paged as JSON."""
    body = _npy(ROWS, rows)
    request = urllib.request.Request(
        f"{base_url}/v1/models/{MODEL}/jobs", data=body, method="POST",
        headers={"Content-Type": "application/x-npy", "Authorization": f"Bearer {api_key}"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=60) as response:
        job = json.loads(response.read())
    deadline, started = time.monotonic() + timeout_seconds, time.monotonic()
    while job["status"] not in ("succeeded", "failed", "cancelled"):
        if time.monotonic() > deadline:
            raise SmokeFailure(f"file job {job['job_id']} still {job['status']} at the deadline")
        time.sleep(0.5)
        _, job = _request(f"{base_url}/v1/jobs/{job['job_id']}", api_key)
    if job["status"] != "succeeded" or job["rows"] != rows:
        raise SmokeFailure(f"file job: {json.dumps(job)[:500]}")
    page_url = f"{base_url}/v1/jobs/{job['job_id']}/result?offset={rows - 2}&limit=2"
    status, page = _request(page_url, api_key)
    if status != 200 or page.get("columns", {}).get("label") != EXPECTED_LABELS:
        raise SmokeFailure(f"the file job's last result page: {status} {json.dumps(page)[:500]}")
    elapsed = time.monotonic() - started
    print(f"file job: {rows:,} rows ({len(body) / 1e6:.0f} MB .npy) succeeded in {elapsed:.1f} s")


def served_by(ids_file: Path, log_files: list[Path]) -> None:
    job_ids = set(ids_file.read_text().split())
    served: Counter[str] = Counter()
    seen: set[str] = set()
    for log_file in log_files:
        for line in log_file.read_text(errors="replace").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if (
                isinstance(event, dict)
                and event.get("event") == "job"
                and event.get("status") == "succeeded"
                and event.get("job_id") in job_ids
            ):
                served[log_file.stem] += 1
                seen.add(event["job_id"])
    for name in sorted(log.stem for log in log_files):
        print(f"served by {name}: {served[name]} jobs")
    missing = job_ids - seen
    if missing:
        raise SmokeFailure(f"{len(missing)} succeeded jobs have no 'job' log event in any worker")
    if sum(1 for count in served.values() if count) < 2:
        raise SmokeFailure("only one worker container served the jobs")


def slow_clients(base_url: str, api_key: str, connections: int) -> None:
    """Connections that stall mid-request leave /health and predicts answering, and are closed
    at the gateway's deadlines (10 s for headers, 408 for a body; docs/operations.md)."""
    host, port = base_url.removeprefix("http://").rsplit(":", 1)
    parts = [
        b"GET /health HTTP/1.1\r\nHost: gateway\r\nX-Slow: ",
        f"POST /v1/models/{MODEL}/predict HTTP/1.1\r\nHost: gateway\r\n"
        f"Authorization: Bearer {api_key}\r\nContent-Type: application/json\r\n"
        "Content-Length: 1000\r\n\r\n{".encode(),
    ]
    stalled = []
    for number in range(connections):
        sock = socket.create_connection((host, int(port)), timeout=5)
        sock.sendall(parts[number % len(parts)])
        stalled.append(sock)
    started = time.monotonic()
    slowest = 0.0
    for _ in range(10):
        began = time.monotonic()
        status, _ = _request(f"{base_url}/health")
        slowest = max(slowest, time.monotonic() - began)
        if status != 200:
            raise SmokeFailure(f"/health answered {status} beside stalled connections")
        predict = f"{base_url}/v1/models/{MODEL}/predict"
        status, body = _request(predict, api_key, {"instances": ROWS})
        if status != 200:
            raise SmokeFailure(f"predict answered {status} beside stalled connections: {body}")
    if slowest >= 1.0:
        raise SmokeFailure(f"/health took {slowest:.2f} s beside {connections} stalled connections")
    still_open = 0
    for sock in stalled:
        sock.settimeout(max(1.0, 45 - (time.monotonic() - started)))
        try:
            while sock.recv(65536):
                pass
        except OSError:
            still_open += 1
        sock.close()
    if still_open:
        raise SmokeFailure(f"{still_open} of {connections} stalled connections open after 45 s")
    print(
        f"slow clients: {connections} stalled connections; /health slowest "
        f"{slowest * 1000:.0f} ms, predicts answered; all closed by the gateway after "
        f"{time.monotonic() - started:.0f} s"
    )


def main(argv: list[str]) -> int:
    try:
        match argv:
            case ["wait-ready", base_url, timeout]:
                wait_ready(base_url, float(timeout))
            case ["submit", base_url, api_key, jobs, timeout, ids_file]:
                submit(base_url, api_key, int(jobs), float(timeout), Path(ids_file))
            case ["file-job", base_url, api_key, rows, timeout]:
                file_job(base_url, api_key, int(rows), float(timeout))
            case ["slow-clients", base_url, api_key, connections]:
                slow_clients(base_url, api_key, int(connections))
            case ["served-by", ids_file, *log_files] if log_files:
                served_by(Path(ids_file), [Path(name) for name in log_files])
            case _:
                print(__doc__, file=sys.stderr)
                return 2
    except SmokeFailure as failure:
        print(f"FAILED: {failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
