"""The bare-Celery baseline: the least code that serves the same model from Celery.

Run as `celery -A bench.bare_celery worker --pool prefork --concurrency 2` with
BENCH_REDIS_URL (broker and result backend) and BENCH_MODEL_PATH (model.onnx)
in the environment. Each prefork child creates its own ONNX Runtime session
after the fork (intra_op_num_threads=1); the task runs one row and returns the
class probabilities through Celery's Redis result backend.

Deliberately Celery's defaults otherwise (early acks, prefetch multiplier 4,
JSON): this is what a minimal Celery service looks like, not a tuned one.
BENCH_ACKS_LATE=1 and BENCH_PREFETCH=<n> give the at-least-once settings onnxq
itself runs with (bench/closed_loop.py: acks_late, prefetch multiplier 1).
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from celery.signals import worker_process_init

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/1")
MODEL_PATH = os.environ.get("BENCH_MODEL_PATH", "")
QUEUE = "bench.bare"
ACKS_LATE = os.environ.get("BENCH_ACKS_LATE", "") == "1"
PREFETCH = int(os.environ.get("BENCH_PREFETCH", "4"))

app = Celery("bench_bare", broker=REDIS_URL, backend=REDIS_URL)
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    task_default_queue=QUEUE,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    task_acks_late=ACKS_LATE,
    worker_prefetch_multiplier=PREFETCH,
)

_session: Any = None


def _make_session() -> Any:
    # Imported here, never in the parent: a forked child must own its ORT state.
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(
        MODEL_PATH, sess_options=options, providers=["CPUExecutionProvider"]
    )


@worker_process_init.connect
def _load_session(**_: Any) -> None:
    global _session
    _session = _make_session()
    print(f"bare_celery_child_ready pid={os.getpid()}", flush=True)


@app.task(name="bench.bare.predict")
def predict(row: list[float]) -> list[float]:
    global _session
    if _session is None:  # pools without worker_process_init (solo, threads)
        _session = _make_session()
    import numpy as np

    _labels, probabilities = _session.run(
        ["label", "probabilities"], {"input": np.asarray([row], dtype=np.float32)}
    )
    return [float(p) for p in probabilities[0]]
