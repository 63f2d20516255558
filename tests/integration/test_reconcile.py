"""A job whose message was lost still ends: beat's reconciler re-sends it (real processes)."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
import requests

from onnxq.devtools.processes import start_beat
from onnxq.devtools.waiting import wait_until
from onnxq.jobs import keys
from tests.integration.conftest import running_stack

pytestmark = pytest.mark.integration

ROW = [1.0] * 30


def test_a_job_whose_message_vanished_from_redis_is_resent_by_beat_and_succeeds(
    tmp_path: Path, model_dir: Path, redis_binary: str
) -> None:
    fast = {"ONNXQ_RECONCILE_INTERVAL_SECONDS": "1", "ONNXQ_RECONCILE_STALE_SECONDS": "2"}
    with running_stack(
        tmp_path, model_dir, redis_binary, extra_env=fast, with_worker=False
    ) as stack:
        accepted = requests.post(
            stack.url("/v1/models/breast-cancer/jobs"), json={"instances": [ROW]}, timeout=10
        )
        assert accepted.status_code == 202
        job_url = stack.url(accepted.headers["Location"])
        # What a worker killed between BRPOP and recording the message unacked
        # leaves behind: a queued job and no message anywhere.
        client = redis.Redis.from_url(stack.redis.url)
        assert client.delete("onnxq.predict") == 1
        assert client.hlen(keys.KOMBU_UNACKED) == 0

        worker = stack.start_worker()
        beat = start_beat(stack.env, tmp_path)
        try:
            wait_until(
                lambda: requests.get(job_url, timeout=5).json()["status"] == "succeeded",
                45,
                "the lost job to be re-sent and run",
            )
        finally:
            beat.stop()
        job = requests.get(job_url, timeout=5).json()
        assert len(job["result"]["probabilities"]) == 1
        assert '"job_resent"' in worker.output()
        assert "Sending due task reconcile-jobs" in beat.output()
