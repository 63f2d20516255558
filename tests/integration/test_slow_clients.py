"""Slow clients against the real gateway (gunicorn, gevent workers), with the shipped deadlines.

64 connections each send part of a request (its line, its headers, or its body) and stall:
`/health` and keyed predicts keep answering beside them, and each stalled connection is closed
once its deadline passes (headers: ONNXQ_CLIENT_HEADER_TIMEOUT_SECONDS; a body: 408 after
ONNXQ_CLIENT_BODY_TIMEOUT_SECONDS plus its size at the minimum rate).
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
import requests

from onnxq.devtools.waiting import wait_until
from onnxq.registry.demo import DEMO_MODEL_NAME
from onnxq.settings import Settings
from tests.integration.conftest import Stack, running_stack

pytestmark = pytest.mark.integration

KEY = "slow-client-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
ROW = [17.99, 10.38, 122.8, 1001, 0.1184, 0.2776, 0.3001, 0.1471, 0.2419, 0.07871] * 3
STALLED = 64
DEFAULTS = Settings(_env_file=None)
HEADER_DEADLINE = DEFAULTS.client_header_timeout_seconds
BODY_DEADLINE = DEFAULTS.client_body_timeout_seconds + 1000 / (
    DEFAULTS.client_body_min_bytes_per_second
)


def predict_head(length: int, *, keyed: bool = True) -> bytes:
    auth = f"Authorization: Bearer {KEY}\r\n" if keyed else ""
    return (
        f"POST /v1/models/{DEMO_MODEL_NAME}/predict HTTP/1.1\r\nHost: gateway\r\n{auth}"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


# What each kind of stalled client sends before it stops; none sends the rest.
PARTS = [
    b"POST /v1/models/",  # part of the request line
    b"GET /health HTTP/1.1\r\nHost: gateway\r\nX-Slow: ",  # part of the headers
    predict_head(1000) + b'{"instances": [[1.0, ',  # a keyed request, part of its body
    predict_head(1000, keyed=False) + b'{"instances"',  # no key, part of its body
]


class StalledClient:
    def __init__(self, stack: Stack, part: bytes):
        port = int(stack.base_url.rsplit(":", 1)[1])
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.sendall(part)
        self.sock.setblocking(False)
        self.opened = time.monotonic()
        self.answer = b""
        self.closed_after: float | None = None

    def closed(self) -> bool:
        """Whether the gateway has closed the connection (reading whatever it answered first)."""
        if self.closed_after is not None:
            return True
        while True:
            try:
                chunk = self.sock.recv(65536)
            except BlockingIOError:
                return False
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self.closed_after = time.monotonic() - self.opened
                self.sock.close()
                return True
            self.answer += chunk


def health_seconds(stack: Stack) -> float:
    started = time.perf_counter()
    response = requests.get(stack.url("/health"), timeout=5)
    assert response.status_code == 200
    return time.perf_counter() - started


def test_64_stalled_connections_leave_health_and_predicts_working_and_are_closed_on_deadline(
    tmp_path: Path, model_dir: Path, redis_binary: str
) -> None:
    extra = {"ONNXQ_API_KEYS": KEY, "ONNXQ_ALLOW_UNAUTHENTICATED": "false"}
    with running_stack(
        tmp_path, model_dir, redis_binary, extra_env=extra, with_worker=False
    ) as stack:
        clients = [StalledClient(stack, PARTS[n % len(PARTS)]) for n in range(STALLED)]
        assert not any(client.closed() for client in clients)

        # While all 64 stall: /health under a second, and keyed predicts answer.
        slowest_health = max(health_seconds(stack) for _ in range(20))
        predict_url = stack.url(f"/v1/models/{DEMO_MODEL_NAME}/predict")
        for _ in range(20):
            response = requests.post(
                predict_url, json={"instances": [ROW]}, headers=AUTH, timeout=5
            )
            assert response.status_code == 200, response.text
        assert slowest_health < 1.0
        assert sum(not client.closed() for client in clients) == STALLED  # all still held

        # Then each is closed once its deadline has passed, not left open.
        wait_until(
            lambda: all(client.closed() for client in clients),
            3 * max(HEADER_DEADLINE, BODY_DEADLINE) + 30,
            "every stalled connection to be closed",
        )
        for number, client in enumerate(clients):
            part = PARTS[number % len(PARTS)]
            assert client.closed_after is not None
            if part.startswith(predict_head(1000)):  # keyed, stalled in its body: a JSON 408
                assert client.closed_after >= BODY_DEADLINE - 0.5
                head, _, body = client.answer.partition(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 408"), client.answer
                assert json.loads(body)["error"]["type"] == "request_timeout"
            else:  # stalled in its line or headers, or refused 401 before its body: closed
                assert client.closed_after >= HEADER_DEADLINE - 0.5
        assert health_seconds(stack) < 1.0
