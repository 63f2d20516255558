"""The client's HTTP: retries of 503, 429 and lost connections, Retry-After, typed errors, and
submits that stay idempotent across retries (against a scripted local HTTP server)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from onnxq.client import Client, InvalidInput, NotFound, Unavailable
from onnxq.client.transport import HttpOptions, Transport
from onnxq.devtools.redis_server import free_port

Script = list[tuple[int, dict[str, str], Any]]


class ScriptedServer:
    """Answers each request with the next (status, headers, JSON body); records the requests."""

    def __init__(self, script: Script):
        self.script = list(script)
        self.requests: list[tuple[str, str, dict[str, str], bytes, float]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                server.requests.append(
                    (self.command, self.path, dict(self.headers), body, time.monotonic())
                )
                status, headers, answer = server.script.pop(0)
                payload = json.dumps(answer).encode()
                self.send_response(status)
                for key, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _handle

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def serving(script: Script) -> Iterator[ScriptedServer]:
    server = ScriptedServer(script)
    try:
        yield server
    finally:
        server.close()


JOB = {"job_id": "j1", "status": "queued"}
UNAVAILABLE = (503, {"Retry-After": "0"}, {"error": {"type": "queue_unavailable", "message": "x"}})


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[ScriptedServer]:
    yield from serving(request.param)


@pytest.mark.parametrize("server", [[UNAVAILABLE, UNAVAILABLE, (202, {}, JOB)]], indirect=True)
def test_a_503_is_retried_and_the_submit_keeps_its_idempotency_key(
    server: ScriptedServer,
) -> None:
    job = Client(server.url, backoff=0.01).model("m").submit([[1.0, 2.0]])
    assert job.id == "j1"
    keys = [headers.get("Idempotency-Key") for _, _, headers, _, _ in server.requests]
    assert len(keys) == 3 and keys[0] and keys == [keys[0]] * 3  # one key for all three sends
    assert json.loads(server.requests[0][3]) == {"instances": [[1.0, 2.0]]}


@pytest.mark.parametrize(
    "server", [[(503, {"Retry-After": "1"}, {}), (200, {}, {"models": []})]], indirect=True
)
def test_retry_after_is_honoured(server: ScriptedServer) -> None:
    assert Client(server.url, backoff=0.0).models() == []
    first, second = (at for *_, at in server.requests)
    assert second - first >= 0.95


@pytest.mark.parametrize("server", [[UNAVAILABLE] * 3], indirect=True)
def test_503s_past_the_retries_raise_unavailable_with_the_servers_error(
    server: ScriptedServer,
) -> None:
    with pytest.raises(Unavailable) as raised:
        Client(server.url, retries=2, backoff=0.0).models()
    assert (raised.value.status, raised.value.type) == (503, "queue_unavailable")
    assert len(server.requests) == 3


def test_a_refused_connection_is_retried_then_raises_unavailable() -> None:
    options = HttpOptions(retries=2, backoff=0.01)
    transport = Transport(f"http://127.0.0.1:{free_port()}", options=options)
    with pytest.raises(Unavailable, match="GET /v1/models"):
        transport.request("GET", "/v1/models")


DETAILS = [{"loc": ["instances", 0, 1], "message": "NaN is not a number"}]


@pytest.mark.parametrize(
    "server",
    [[(422, {"X-Request-ID": "r1"}, {"error": {"type": "invalid_input", "message": "1 problem",
                                               "details": DETAILS}}),
      (404, {}, {"error": {"type": "model_not_found", "message": "no model 'x'"}})]],
    indirect=True,
)  # fmt: skip
def test_an_error_answer_raises_its_type_with_the_servers_fields(server: ScriptedServer) -> None:
    client = Client(server.url)
    with pytest.raises(InvalidInput) as raised:
        client.model("m").predict([[1.0, None]])
    error = raised.value
    assert (error.status, error.type, error.message) == (422, "invalid_input", "1 problem")
    assert error.details == DETAILS and error.request_id == "r1"
    with pytest.raises(NotFound, match="model_not_found: no model 'x'"):
        client.model("x").predict([[1.0]])
    assert len(server.requests) == 2  # a 4xx is never retried


METADATA = {"features": [{"name": "b"}, {"name": "a"}]}


@pytest.mark.parametrize(
    "server", [[(200, {}, METADATA), (202, {}, JOB), (202, {}, JOB)]], indirect=True
)
def test_large_arrays_and_frames_go_as_npy_in_feature_order(server: ScriptedServer) -> None:
    import io

    import numpy as np
    import pandas as pd

    model = Client(server.url).model("m", version=2)
    frame = pd.DataFrame({"a": np.arange(1000.0), "b": -np.arange(1000.0)})
    model.submit(frame, callback_url="https://example.com/done")
    model.submit(np.ones((1000, 2)))
    (_, meta_path, *_), (_, path, headers, body, _), (_, _, _, array_body, _) = server.requests
    assert meta_path == "/v1/models/m/versions/2"
    assert path == "/v1/models/m/jobs?version=2&callback_url=https%3A%2F%2Fexample.com%2Fdone"
    assert headers["Content-Type"] == "application/x-npy"
    sent = np.load(io.BytesIO(body))
    assert sent.dtype == np.float32 and sent[:2].tolist() == [[-0.0, 0.0], [-1.0, 1.0]]
    assert np.load(io.BytesIO(array_body)).shape == (1000, 2)


@pytest.mark.parametrize("with_progress", [False, True])
def test_a_file_is_sent_whole_with_its_length_on_every_retry(
    tmp_path: Path, with_progress: bool
) -> None:
    body = bytes(range(256)) * 5000  # 1.28 MB: two of the progress's chunks
    path = tmp_path / "rows.parquet"
    path.write_bytes(body)
    seen: list[tuple[int, int]] = []
    progress = (lambda sent, total: seen.append((sent, total))) if with_progress else None
    for server in serving([UNAVAILABLE, UNAVAILABLE, (202, {}, JOB)]):
        job = Client(server.url, backoff=0.01).model("m").submit(path, progress=progress)
        assert job.id == "j1"
        assert len(server.requests) == 3
        for _, _, headers, sent, _ in server.requests:  # the map is sent from its start each time
            assert headers["Content-Length"] == str(len(body)) and sent == body
            assert headers["Content-Type"] == "application/vnd.apache.parquet"
    assert seen[-1:] == ([(len(body), len(body))] if with_progress else [])
