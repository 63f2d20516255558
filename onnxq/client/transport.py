"""HTTP for the client: one keep-alive connection, JSON both ways, retries with backoff.

Standard library only (http.client), so the client needs nothing beyond numpy. A 503 or 429 and a
connection that fails or drops are retried, waiting what the server's `Retry-After` asks or an
exponential backoff with jitter; any other answer is returned (an error answer raised as its
typed exception, onnxq/client/errors.py).
"""

from __future__ import annotations

import http.client
import json
import mmap
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from onnxq.client.errors import ClientError, Unavailable, error_for

RETRIED_STATUSES = {429, 503}
CHUNK_BYTES = 1024 * 1024
Progress = Callable[[int, int], None]  # (bytes sent, bytes in all)
Body = bytes | mmap.mmap  # a file's body: its map, sent from the page cache


def _chunks(payload: Body, progress: Progress) -> Iterator[memoryview]:
    view = memoryview(payload)
    progress(0, len(view))
    for start in range(0, len(view), CHUNK_BYTES):
        yield view[start : start + CHUNK_BYTES]
        progress(min(start + CHUNK_BYTES, len(view)), len(view))


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: Any

    def retry_after(self, default: float) -> float:
        try:
            return max(0.0, float(self.headers.get("retry-after", default)))
        except ValueError:
            return default


@dataclass(frozen=True)
class HttpOptions:
    timeout: float = 60.0  # seconds for one request (a waiting poll adds its wait)
    retries: int = 5  # of a 503 or 429 or a failed connection, after the first try
    backoff: float = 0.2  # seconds before the first retry; doubles each retry


class Transport:
    def __init__(self, url: str, api_key: str | None = None, options: HttpOptions | None = None):
        options = options or HttpOptions()
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self._scheme, self._host, self._port = parts.scheme, parts.hostname, parts.port
        self._prefix = parts.path.rstrip("/")
        self._headers = {"Accept": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self.timeout, self.retries, self.backoff = options.timeout, options.retries, options.backoff
        self._connection: http.client.HTTPConnection | None = None

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
        *,
        data: Body | None = None,
        content_type: str | None = None,
        progress: Progress | None = None,
    ) -> Answer:
        """Send `body` as JSON, or `data` as `content_type`, retrying what is worth retrying;
        return a 2xx answer or raise its error. `progress(sent, total)` follows the upload."""
        payload = (
            data
            if data is not None
            else (None if body is None else json.dumps(body, allow_nan=False).encode())
        )
        sent = {**self._headers, **(headers or {})}
        if payload is not None:
            sent["Content-Type"] = content_type or "application/json"
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                answer = self._send(method, path, payload, sent, timeout or self.timeout, progress)
            except (OSError, http.client.HTTPException) as exc:
                self.close()  # a dropped or refused connection: start a new one
                if last:
                    raise Unavailable(f"{method} {path}: {exc!r}") from exc
                time.sleep(self._delay(attempt))
                continue
            if answer.status in RETRIED_STATUSES and not last:
                time.sleep(answer.retry_after(self._delay(attempt)))
                continue
            if answer.status >= 400:
                raise error_for(answer.status, answer.body, answer.headers.get("x-request-id"))
            return answer
        raise ClientError("unreachable")  # the loop returns or raises

    def _delay(self, attempt: int) -> float:
        return self.backoff * (2**attempt) * (0.5 + random.random() / 2)

    def _send(
        self, method: str, path: str, payload: Body | None, headers: dict[str, str],
        timeout: float, progress: Progress | None = None,
    ) -> Answer:  # fmt: skip
        if self._connection is None:
            kind = (
                http.client.HTTPSConnection
                if self._scheme == "https"
                else http.client.HTTPConnection
            )
            self._connection = kind(self._host, self._port, timeout=timeout)
        self._connection.timeout = timeout
        if self._connection.sock is not None:
            self._connection.sock.settimeout(timeout)
        # A map as a view: http.client would read a map, having `read`, as a file, chunked.
        body: Any = memoryview(payload) if isinstance(payload, mmap.mmap) else payload
        if payload is not None and progress is not None:
            headers = {**headers, "Content-Length": str(len(payload))}  # not chunked
            body = _chunks(payload, progress)
        try:
            self._connection.request(method, self._prefix + path, body=body, headers=headers)
        finally:
            if isinstance(body, memoryview):
                body.release()
        response = self._connection.getresponse()
        raw = response.read()
        answer_headers = {k.lower(): v for k, v in response.getheaders()}
        if answer_headers.get("connection", "").lower() == "close":
            self.close()
        kind = answer_headers.get("content-type", "")
        parsed: Any = json.loads(raw) if raw and "json" in kind else raw
        return Answer(response.status, answer_headers, parsed)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
