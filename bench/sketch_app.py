"""The minimal job service issue 12 names as the floor of its design, to measure onnxq against.

    gunicorn --worker-class gthread --workers 2 --threads 16 'bench.sketch_app:app'
    python -m bench.sketch_app worker          # prefork-like: 2 processes

Flask on gunicorn gthread; a Redis list as the queue; a worker process that takes up to 64
waiting jobs per session.run; the result awaited by a blocking pop inside the same request.
No validation, authentication, job records, crash safety (a popped job dies with its worker),
logging or metrics: what is left is HTTP, Redis and ONNX Runtime. It answers the same paths as
onnxq's job API (`POST /v1/models/<m>/jobs` with `Prefer: wait`, `GET /v1/jobs/<id>?wait=`,
`GET /v1/jobs?ids=...&wait=`),
so bench/closed_loop_client.py drives it unchanged. BENCH_REDIS_URL and BENCH_MODEL_PATH come
from the environment.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import redis
from flask import Flask, request

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/2")
MODEL_PATH = os.environ.get("BENCH_MODEL_PATH", "")
QUEUE = "sketch:queue"
BATCH = 64
PROCESSES = 2

app = Flask(__name__)
_redis = redis.Redis.from_url(REDIS_URL, max_connections=64)


def _result_key(job_id: str) -> str:
    return f"sketch:result:{job_id}"


def _answer(job_id: str, seconds: float) -> tuple[str, int]:
    popped = _redis.blpop([_result_key(job_id)], timeout=seconds) if seconds > 0 else None
    if popped is None:
        return json.dumps({"job_id": job_id, "status": "queued"}), 202
    return popped[1].decode(), 200


@app.post("/v1/models/<name>/jobs")
def submit(name: str) -> tuple[str, int]:
    job_id = uuid.uuid4().hex
    row = json.loads(request.get_data())["instances"][0]
    _redis.lpush(QUEUE, json.dumps({"job_id": job_id, "row": row}))
    prefer = request.headers.get("Prefer", "")
    return _answer(job_id, float(prefer.split("=", 1)[1]) if prefer.startswith("wait=") else 0)


@app.get("/v1/jobs/<job_id>")
def poll(job_id: str) -> tuple[str, int]:
    return _answer(job_id, float(request.args.get("wait", "0")))


@app.get("/v1/jobs")
def poll_many() -> tuple[str, int]:
    """Several jobs (`ids`), each awaited by its own blocking pop within one deadline."""
    deadline = time.monotonic() + float(request.args.get("wait", "0"))
    jobs = []
    for job_id in request.args["ids"].split(","):
        document, _ = _answer(job_id, max(0.0, deadline - time.monotonic()))
        jobs.append(json.loads(document))
    return json.dumps({"jobs": jobs, "missing": []}), 200


def work() -> None:
    """One worker process: block for a job, take up to BATCH - 1 more, run them together."""
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(MODEL_PATH, options, providers=["CPUExecutionProvider"])
    client = redis.Redis.from_url(REDIS_URL)
    print(f"sketch_worker_ready pid={os.getpid()}", flush=True)
    while True:
        popped = client.brpop([QUEUE], timeout=1)
        if popped is None:
            continue
        raws = [popped[1], *(client.rpop(QUEUE, BATCH - 1) or [])]
        jobs: list[dict[str, Any]] = [json.loads(raw) for raw in raws]
        matrix = np.asarray([job["row"] for job in jobs], dtype=np.float32)
        labels, probabilities = session.run(None, {session.get_inputs()[0].name: matrix})
        finished = datetime.now(UTC).isoformat()
        with client.pipeline(transaction=False) as pipe:
            for job, label, probs in zip(jobs, labels, probabilities, strict=True):
                document = {
                    "job_id": job["job_id"],
                    "status": "succeeded",
                    "finished_at": finished,
                    "result": {"labels": [int(label)], "probabilities": [probs.tolist()]},
                }
                key = _result_key(job["job_id"])
                pipe.lpush(key, json.dumps(document))
                pipe.expire(key, 60)
            pipe.execute()


if __name__ == "__main__" and sys.argv[1:] == ["worker"]:
    workers = [multiprocessing.Process(target=work) for _ in range(PROCESSES)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
