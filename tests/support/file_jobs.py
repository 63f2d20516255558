"""Submitting a job's rows as a file to a test app, running it, and what a JSON job of the same
rows answers (tests/gateway/test_file_jobs.py, test_parquet_jobs.py)."""

from __future__ import annotations

import numpy as np
from flask.testing import FlaskClient

from gateway.services import Services
from onnxq.jobs import keys
from tests.support.jobs import take_messages
from worker.runner import JobRunner


def submit(client: FlaskClient, name: str, body: bytes, kind: str, query: str = "", **headers):
    return client.post(f"/v1/models/{name}/jobs{query}", data=body, content_type=kind,
                       headers=headers)  # fmt: skip


def run_job(client: FlaskClient, services: Services, job_id: str) -> dict:
    [message] = take_messages(services.queue.celery, services.settings.queue_name, job_id)
    JobRunner(services.repository, services.jobs, services.prediction_log).run([message])
    return client.get(f"/v1/jobs/{job_id}").get_json()


def json_job(client: FlaskClient, services: Services, name: str, matrix: np.ndarray) -> dict:
    """The same rows as a JSON job, run: what a file job's document must match."""
    answer = client.post(f"/v1/models/{name}/jobs", json={"instances": matrix.tolist()})
    return run_job(client, services, answer.get_json()["job_id"])


def no_jobs(services: Services) -> bool:
    """No job recorded, and nothing of its body left in the blob store."""
    root = services.settings.blob_root
    left = list(root.iterdir()) if root.exists() else []
    return services.redis.keys(keys.JOB_PREFIX + "*") == [] and left == []
