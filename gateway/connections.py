"""When the gateway closes a keep-alive connection after answering: a body left unread, or a
connection that has carried its share of requests.

A connection stays with the gunicorn worker process that accepted it. Clients and load balancers
open their keep-alive connections at once, so one process can end up with most of them, the other
idle (measured: 16 connections split 12/4 gave a p99 20x the floor's). Closing each connection
after `client_keepalive_requests` answers (nginx's `keepalive_requests`, Envoy's
`max_requests_per_connection`) makes clients reconnect now and then, and a reconnect is accepted
by whichever process is free to accept it: the connections spread over the processes by load.
It costs one TCP handshake per that many requests.

gunicorn ignores a `Connection` header set by the app; gateway/gunicorn_conf.py makes it honour
`Connection: close` (the answer says so, and gunicorn closes after writing it).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import gevent
from flask import Flask, Response, g, request

from gateway.services import current_services


@dataclass
class _Connection:
    answered: int = 0  # requests answered on it so far
    turn: int = -1  # the event loop's iteration in which it was last answered


# Per connection (its socket), forgotten when the socket is.
_connections: weakref.WeakKeyDictionary[Any, _Connection] = weakref.WeakKeyDictionary()
# A timer, not `gevent.sleep(0)`: see _take_turns.
_TURN_SECONDS = 1e-6


def _close_when_due(response: Response) -> Response:
    sock = request.environ.get("gunicorn.socket")
    if g.get("close_connection"):
        response.headers["Connection"] = "close"
        return response
    if sock is None:
        return response
    answered = record_answer(sock)
    if answered >= current_services().settings.client_keepalive_requests:
        response.headers["Connection"] = "close"
        del _connections[sock]
    return response


def record_answer(sock: Any) -> int:
    """Note that `sock` is being answered in this turn of the loop; its answers so far."""
    connection = _connections.get(sock)
    if connection is None:
        connection = _connections[sock] = _Connection()
    connection.answered += 1
    connection.turn = gevent.get_hub().loop.iteration
    return connection.answered


def _wait_for_next_turn() -> None:
    gevent.sleep(_TURN_SECONDS)


def _take_turns() -> None:
    """Let every other connection with a request waiting go first.

    gevent switches greenlets only when one would block: a client that sends its next request
    as soon as it has its answer finds the read already satisfied, and its greenlet could serve
    it again and again while others wait (p50 0.8 ms beside a p99 of 70 ms, measured). Such a
    request (its connection was answered in this same turn of the event loop) waits for the
    next turn. A request whose read blocked has waited for its turn already and is served at
    once: waiting anyway would cost an idle gateway ~0.2 ms a request (the timer below cannot
    fire before the loop's next poll, which then sleeps its minimum of a millisecond).

    The wait is a timer, not `gevent.sleep(0)`: that queues the greenlet as a loop callback,
    and gevent runs callbacks in a batch, looking at the clock only every 50 of them, before it
    polls the sockets again. A greenlet whose next request is already read re-queues itself in
    the same batch, so connections waiting to be polled wait up to 50 requests (~20 ms: the p99
    of 16 connections was 25 ms against a p50 of 2 ms). A timer fires only after the next poll:
    every connection with a request is served once per turn of the loop (p99 10 ms, measured).
    """
    sock = request.environ.get("gunicorn.socket")
    if sock is not None:
        take_turn(sock)


def take_turn(sock: Any) -> None:
    connection = _connections.get(sock)
    if connection is not None and connection.turn == gevent.get_hub().loop.iteration:
        _wait_for_next_turn()


def init_app(app: Flask) -> None:
    app.before_request(_take_turns)
    app.after_request(_close_when_due)
