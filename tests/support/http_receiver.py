"""A local HTTP receiver for completion callbacks and drift webhooks."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() on arrival

    def json(self) -> Any:
        return json.loads(self.body)


class HttpReceiver:
    """A server on 127.0.0.1 that records every request and answers scripted statuses in turn.

    The last status repeats once the script runs out. A 3xx answer redirects to `/moved`;
    `delay` makes every answer that late.
    """

    def __init__(self, statuses: Sequence[int] = (200,), delay: float = 0.0):
        self.statuses = list(statuses)
        self.delay = delay
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/hook"

    @property
    def posts(self) -> list[Received]:
        with self._lock:
            return [request for request in self.received if request.method == "POST"]

    def __enter__(self) -> HttpReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def _answer(self, request: Received) -> int:
        with self._lock:
            self.received.append(request)
            return self.statuses[min(len(self.received), len(self.statuses)) - 1]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status = server._answer(
                    Received(
                        self.command, self.path, dict(self.headers.items()), body, time.monotonic()
                    )
                )
                if server.delay:
                    time.sleep(server.delay)
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "/moved")
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = do_GET = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
