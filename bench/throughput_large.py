"""bench/throughput.py, section 2: one large job through onnxq (submit, poll, fetch, with the job
document's timestamps) against `session.run` on the same rows in this process, and what merely
parsing its JSON body costs."""

from __future__ import annotations

import contextlib
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.job_client import ENDED, POLL_FLOOR_SECONDS, Http, iso_ts, now
from bench.model import MODEL_NAME, make_session
from bench.processes import say


def large_body(data: np.ndarray, rows: int) -> tuple[np.ndarray, bytes]:
    """`rows` rows drawn from `data` (seed 0) and the JSON job body that carries them."""
    rng = np.random.default_rng(0)
    big = data[rng.integers(0, len(data), size=rows)]
    return big, json.dumps({"instances": big.tolist()}).encode()


def large_job(port: int, body: bytes, rows: int) -> dict[str, float]:
    """Submit one job, poll it every 20 ms, fetch the result: seconds of each step."""
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
        if document["status"] in ENDED:
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


def run_large(
    port: int, model_path: Path, big: np.ndarray, body: bytes, results: dict[str, Any]
) -> None:
    """The large job, then raw onnxruntime right after, then the JSON parse: into `results`."""
    rows = len(big)
    results["body_mb"] = len(body) / 2**20
    say(f"onnxq: one {rows:,}-row job ({results['body_mb']:.1f} MB) ...")
    results["large"] = large_job(port, body, rows)
    say(f"onnxq: {rows / results['large']['total']:,.0f} rows/s")
    session = make_session(model_path)
    results["raw_bulk"] = raw_bulk(session, big.astype(np.float32))
    say(f"raw onnxruntime: {rows / statistics.median(results['raw_bulk']):,.0f} rows/s")
    results["json_floor"] = json_floor(body)
