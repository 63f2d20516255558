"""HTTP limits on the real gateway: every refusal is a JSON 4xx the client gets to read.

Raw sockets, because HTTP client libraries hide what is under test here: headers over
gunicorn's limits, a chunked body over the limit, a client that writes a whole oversized body
before it reads the answer.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from onnxq.registry.demo import DEMO_MODEL_NAME
from tests.integration.conftest import Stack, running_stack

pytestmark = pytest.mark.integration

LIMIT = 1024 * 1024  # ONNXQ_MAX_BODY_BYTES for this stack: small, so the bodies here stay small
PREDICT = f"POST /v1/models/{DEMO_MODEL_NAME}/predict HTTP/1.1\r\nHost: gateway\r\n"
JSON = "Content-Type: application/json\r\n"


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, model_dir: Path, redis_binary: str
) -> Iterator[Stack]:
    directory = tmp_path_factory.mktemp("limits")
    extra = {"ONNXQ_MAX_BODY_BYTES": str(LIMIT)}
    with running_stack(directory, model_dir, redis_binary, extra_env=extra, with_worker=False) as s:
        yield s


def exchange(stack: Stack, head: bytes, body: bytes = b"") -> tuple[int, dict, bytes]:
    """Send all of `head` and `body` first, as most clients do, then read one answer."""
    port = int(stack.base_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head)
        for start in range(0, len(body), 1 << 16):
            sock.sendall(body[start : start + (1 << 16)])  # a broken pipe fails the test
        answer = b""
        while b"\r\n\r\n" not in answer and (chunk := sock.recv(1 << 16)):
            answer += chunk
        status_line, _, rest = answer.partition(b"\r\n")
        headers_text, _, content = rest.partition(b"\r\n\r\n")
        headers = dict(
            line.decode("latin-1").lower().split(": ", 1) for line in headers_text.split(b"\r\n")
        )
        while len(content) < int(headers["content-length"]) and (chunk := sock.recv(1 << 16)):
            content += chunk
    return int(status_line.split()[1]), headers, content


def chunked(data: bytes, size: int = 8192) -> bytes:
    pieces = [data[i : i + size] for i in range(0, len(data), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


def test_headers_over_the_limit_answer_a_json_431(stack: Stack) -> None:
    head = f"GET /health HTTP/1.1\r\nHost: gateway\r\nX-Big: {'a' * 9000}\r\n\r\n".encode()
    status, headers, body = exchange(stack, head)
    assert status == 431
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["error"]["type"] == "request_header_fields_too_large"


def test_a_request_line_over_the_limit_answers_a_json_414(stack: Stack) -> None:
    status, _, body = exchange(stack, f"GET /{'a' * 9000} HTTP/1.1\r\n\r\n".encode())
    assert status == 414
    assert json.loads(body)["error"]["type"] == "uri_too_long"


def test_a_chunked_body_over_the_limit_answers_413_not_415(stack: Stack) -> None:
    data = b'{"instances": [' + b"1.0," * (LIMIT // 2) + b"1.0]}"
    head = f"{PREDICT}{JSON}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n".encode()
    status, _, body = exchange(stack, head, chunked(data))
    assert status == 413
    error = json.loads(body)["error"]
    assert error["type"] == "request_entity_too_large" and str(LIMIT) in error["message"]


def test_a_client_that_writes_a_whole_oversized_body_first_reads_a_413(stack: Stack) -> None:
    data = b"x" * (LIMIT + LIMIT // 2)
    for connection in ("close", "keep-alive"):
        head = f"{PREDICT}{JSON}Content-Length: {len(data)}\r\nConnection: {connection}\r\n\r\n"
        status, _, body = exchange(stack, head.encode(), data)
        assert status == 413
        assert json.loads(body)["error"]["type"] == "request_entity_too_large"


def test_a_chunked_body_within_the_limit_is_served(stack: Stack) -> None:
    row = ", ".join(["1.0"] * 30)
    data = f'{{"instances": [[{row}]]}}'.encode()
    head = f"{PREDICT}{JSON}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n".encode()
    status, _, body = exchange(stack, head, chunked(data, size=7))
    assert status == 200, body
    assert len(json.loads(body)["labels"]) == 1


def test_a_body_that_stops_arriving_answers_408_and_the_connection_closes(stack: Stack) -> None:
    port = int(stack.base_url.rsplit(":", 1)[1])
    head = f"{PREDICT}{JSON}Content-Length: 100\r\n\r\n".encode()  # keep-alive
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(head + b'{"instances": ')
        started = time.monotonic()
        answer = b""
        while chunk := sock.recv(1 << 16):  # ends when the gateway closes
            answer += chunk
        waited = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408")
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["error"]["type"] == "request_timeout"
    assert waited < 30  # closed after answering, not left to the keep-alive deadline as well


def test_a_keep_alive_connection_is_closed_after_its_share_of_requests(stack: Stack) -> None:
    share = int(stack.env.get("ONNXQ_CLIENT_KEEPALIVE_REQUESTS", "100"))
    port = int(stack.base_url.rsplit(":", 1)[1])
    connection_headers = []
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        reader = sock.makefile("rb")
        for _ in range(share):
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: gateway\r\n\r\n")
            assert reader.readline().startswith(b"HTTP/1.1 200")
            headers = {}
            while (line := reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            reader.read(int(headers["content-length"]))
            connection_headers.append(headers.get("connection"))
        assert reader.read() == b""  # then the gateway closed it
    assert connection_headers[:-1] == ["keep-alive"] * (share - 1)
    assert connection_headers[-1] == "close"
