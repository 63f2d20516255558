"""encode_task builds the message Celery's send_task pushes, and the submit path sends it in the
same script as the job record, against a real redis-server."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
import redis

from onnxq.broker.celery_app import PREDICT_TASK, make_celery
from onnxq.broker.redis_client import connect_redis
from onnxq.broker.task_message import AWAITED_HEADER, encode_task
from onnxq.devtools.redis_server import RedisServer
from onnxq.jobs import keys
from onnxq.jobs.queue import JobQueue, predict_headers, predict_message, send_task
from onnxq.jobs.record import Job, JobStatus, load_job, utc_now
from onnxq.jobs.store import JobStore
from onnxq.settings import Settings
from tests.support.records import queued_job

JOB_ID = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def settings_for(redis_server: RedisServer) -> Settings:
    return Settings(_env_file=None, redis_url=redis_server.url)


def decoded(raw: bytes) -> dict:
    message = json.loads(raw)
    message["body"] = json.loads(base64.b64decode(message["body"]))
    return message


def job() -> Job:
    return queued_job(JOB_ID, model="m", rows=1, request_id="req", submitted_at=utc_now())


@pytest.mark.parametrize("notify", [None, "onnxq:waiters:gateway-1"])
def test_the_encoded_message_is_what_send_task_pushes(
    settings_for: Settings, notify: str | None
) -> None:
    celery = make_celery(settings_for, main="onnxq-gateway")
    client = redis.Redis.from_url(settings_for.redis_url)
    waited_for = job().model_copy(update={"notify": notify})
    kwargs = predict_message(waited_for, width=30, rows=1)
    headers = predict_headers(waited_for)
    send_task(celery, PREDICT_TASK, kwargs, task_id=JOB_ID, headers=headers)
    sent = decoded(client.rpop(settings_for.queue_name))

    encoded = encode_task(celery, PREDICT_TASK, kwargs, JOB_ID, settings_for.queue_name, headers)
    ours = decoded(encoded.payload)

    # A client waits for it in its request: said in a header, which older workers ignore.
    assert ours["headers"].get(AWAITED_HEADER) is (True if notify else None)

    assert encoded.key == settings_for.queue_name
    for message in (sent, ours):
        assert message["properties"].pop("delivery_tag")  # random per message
    assert ours == sent


def test_submit_writes_record_rows_and_message_in_one_script(
    settings_for: Settings,
) -> None:
    celery = make_celery(settings_for, main="onnxq-gateway")
    client = connect_redis(settings_for.redis_url)
    store = JobStore(client, ttl_seconds=3600)
    queue = JobQueue(celery, store, broker_is_store=True)
    matrix = np.arange(30, dtype=np.float32).reshape(1, 30)
    with client.monitor() as monitor:
        submitted = queue.submit(model="m", version=1, matrix=matrix, request_id="req").job
        sent, in_script = [], []
        for command in monitor.listen():
            name = command["command"].split()[0].upper()
            if command.get("client_type") == "lua":
                in_script.append(name)
            elif name not in {"PING", "CLIENT", "HELLO"}:  # connection set-up
                sent.append(name)
            if name == "LPUSH":
                break
    # record, rows, tombstone, active index and message: one script, nothing else (the first
    # call of a process loads the script: EVALSHA, SCRIPT LOAD, EVALSHA)
    assert sent[-1] == "EVALSHA" and set(sent) <= {"EVALSHA", "SCRIPT"}
    assert in_script == ["SET", "SET", "SET", "ZADD", "LPUSH"]
    assert client.llen(settings_for.queue_name) == 1

    assert load_job(client.get(keys.job(submitted.job_id))).status is JobStatus.QUEUED
    assert client.get(keys.rows(submitted.job_id)) == matrix.tobytes()
    message = decoded(client.rpop(settings_for.queue_name))
    assert (
        message["headers"]["task"] == PREDICT_TASK and message["headers"]["id"] == submitted.job_id
    )
    assert message["body"][1] == predict_message(submitted, width=30, rows=1)
