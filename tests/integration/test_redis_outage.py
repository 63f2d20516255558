"""Redis goes away and comes back: the gateway says 503 (never 500) and recovers unrestarted."""

from __future__ import annotations

import time

import pytest
import requests

from onnxq.devtools.processes import gateway_answers
from onnxq.devtools.waiting import wait_until
from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration

ROW = [1.0] * 30


def submit(stack: Stack) -> requests.Response:
    return requests.post(
        stack.url("/v1/models/breast-cancer/jobs"), json={"instances": [ROW]}, timeout=10
    )


def test_while_redis_is_down_submit_poll_and_ready_say_503_then_recover_within_5s(
    stack: Stack,
) -> None:
    accepted = submit(stack)
    assert accepted.status_code == 202
    location = accepted.headers["Location"]

    stack.redis.stop()  # graceful: AOF flushed
    outage_started = time.monotonic()
    wait_until(lambda: gateway_answers(stack.base_url, "/ready", 503), 5, "/ready to turn 503")
    ready = requests.get(stack.url("/ready"), timeout=5).json()
    assert ready["checks"]["redis"] is False

    refused = submit(stack)
    assert refused.status_code == 503
    assert refused.json()["error"]["type"] == "queue_unavailable"
    poll = requests.get(stack.url(location), timeout=10)
    assert poll.status_code == 503
    assert poll.json()["error"]["type"] == "queue_unavailable"
    assert requests.get(stack.url("/health"), timeout=5).status_code == 200
    # Keep Redis away long enough that kombu's default backoff (2, 4, 6 ... s)
    # would leave the worker idle for over 5 s after Redis is back.
    time.sleep(max(0.0, outage_started + 15 - time.monotonic()))

    stack.redis.start()
    back = time.monotonic()
    wait_until(lambda: gateway_answers(stack.base_url, "/ready"), 5, "/ready to recover")
    assert time.monotonic() - back < 5

    # The job accepted before the outage survived it (AOF), and new work flows again.
    assert requests.get(stack.url(location), timeout=5).json()["job_id"] in location
    after = submit(stack)
    assert after.status_code == 202

    assert stack.ended_job(after.json()["job_id"], timeout=10)["status"] == "succeeded"
    assert time.monotonic() - back < 5, "the worker took over 5 s to serve again"
