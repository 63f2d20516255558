"""Reading a request body: within the size limit, within a deadline, drained before a 413.

A client that stops sending halfway through its body must not hold a connection (and its
greenlet) forever: the whole body has `client_body_timeout_seconds` plus its size at
`client_body_min_bytes_per_second` to arrive, then the gateway answers 408 and closes. The
request line and headers have gunicorn's `keepalive` (gateway/gunicorn_conf.py).

A request whose body is left unread (408, or a 413 past the drain cap) notes
`g.close_connection`: gateway/connections.py closes the connection after the answer.

A body over `max_body_bytes` answers 413. A client that writes its whole body before reading
(most HTTP clients) would see a broken pipe instead of that answer if the gateway closed on it
unread, so up to twice the limit is read and dropped first; beyond that the connection is
closed at once rather than spend the bandwidth.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gevent
from flask import current_app, g, request
from werkzeug.exceptions import RequestEntityTooLarge, RequestTimeout

from gateway.services import current_services

CHUNK_BYTES = 64 * 1024
LIMIT = "ONNXQ_MAX_BODY_BYTES"  # the setting of the JSON bodies' limit
DRAIN_FACTOR = 2  # read and drop bodies up to this multiple of the limit before a 413


class _Late(Exception):
    """The body deadline passed (raised into the reading greenlet by gevent)."""


def read_body() -> bytes:
    """The request body, read once and cached on the request; 413 over the limit, 408 late."""
    cached = g.get("body")
    if cached is not None:
        return cached
    chunks: list[bytes] = []
    receive_body(chunks.append, current_app.config["MAX_CONTENT_LENGTH"])
    g.body = b"".join(chunks)
    return g.body  # type: ignore[no-any-return]


def receive_body(
    write: Callable[[bytes], object],
    limit: int,
    setting: str = LIMIT,
    chunk_bytes: int = CHUNK_BYTES,
) -> int:
    """Hand the request body to `write` in chunks as it arrives (a file job's upload goes to
    disk so), within `limit` bytes (413 beyond it, naming `setting`) and the body deadline (408);
    how many bytes it had."""
    request.max_content_length = limit  # werkzeug's stream ends a chunked body there
    declared = request.content_length
    seconds = body_deadline(declared if declared is not None else limit)
    try:
        with gevent.Timeout(seconds, _Late):
            if declared is not None and declared > limit:
                _drain_and_refuse(declared, limit, setting)
            return _read_within(write, limit, setting, chunk_bytes)
    except _Late:
        g.close_connection = True
        raise RequestTimeout(
            f"the request body did not arrive within {seconds:.0f} s (ONNXQ_CLIENT_BODY_*)"
        ) from None


def body_deadline(size: int) -> float:
    """Seconds a body of `size` bytes may take to arrive."""
    settings = current_services().settings
    return settings.client_body_timeout_seconds + size / settings.client_body_min_bytes_per_second


def _too_large(limit: int, setting: str) -> RequestEntityTooLarge:
    advice = "send large batches as a file" if setting == LIMIT else "split the file"
    return RequestEntityTooLarge(
        f"the request body is larger than the gateway's limit of {limit} bytes "
        f"({setting}); {advice}"
    )


def _read_within(
    write: Callable[[bytes], object], limit: int, setting: str, chunk_bytes: int
) -> int:
    """Read to the end of the body (Content-Length or chunked), refusing more than `limit`."""
    stream = request.stream  # werkzeug's: ends at Content-Length, or at the limit if chunked
    size = 0
    try:
        while chunk := stream.read(chunk_bytes):
            write(chunk)
            size += len(chunk)
    except RequestEntityTooLarge:
        # A chunked body that went past the limit: drop what else it sends, up to the cap.
        _drain(request.environ["wsgi.input"], DRAIN_FACTOR * limit - limit)
        raise _too_large(limit, setting) from None
    return size


def _drain_and_refuse(declared: int, limit: int, setting: str) -> None:
    if declared <= DRAIN_FACTOR * limit:
        _drain(request.environ["wsgi.input"], declared)
    else:
        g.close_connection = True
    raise _too_large(limit, setting)


def _drain(stream: Any, most: int) -> None:
    """Read and drop up to `most` bytes; if the body goes on past that, close after answering."""
    left = most
    while left > 0:
        chunk = stream.read(min(CHUNK_BYTES, left))
        if not chunk:
            return
        left -= len(chunk)
    if stream.read(1):
        g.close_connection = True
