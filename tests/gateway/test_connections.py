"""How the gateway's connections share a gunicorn gevent worker (gateway/connections.py)."""

from __future__ import annotations

import gevent
import gevent.socket
import pytest

from gateway import connections
from gateway.connections import record_answer, take_turn


def _serve_in_turns() -> list[str]:
    """One connection whose next request is always already read (it never blocks on its socket)
    and one whose request arrives on its socket while the first is being served: the order in
    which their requests are served."""
    served: list[str] = []
    ours, theirs = gevent.socket.socketpair()
    busy, _ = gevent.socket.socketpair()

    def waiting_on_its_socket() -> None:
        ours.recv(1)
        served.append("waiting")

    def always_ready() -> None:
        for _ in range(10):
            take_turn(busy)
            served.append("ready")
            record_answer(busy)

    waiting = gevent.spawn(waiting_on_its_socket)
    gevent.sleep(0)  # it is now blocked in recv
    theirs.sendall(b"x")  # its request has arrived; the loop has not polled it yet
    ready = gevent.spawn(always_ready)
    gevent.joinall([waiting, ready], timeout=10, raise_error=True)
    for sock in (ours, theirs, busy):
        sock.close()
    return served


def test_a_connection_waiting_on_its_socket_is_served_in_the_next_turn_of_the_loop() -> None:
    served = _serve_in_turns()
    # The busy one's first request (new connection) and the one of this turn, then the other.
    assert served.index("waiting") <= 2, served


def test_a_yield_to_the_callback_queue_would_let_the_busy_connection_go_again_and_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Why the wait is a timer: gevent.sleep(0) resumes the busy greenlet in the same batch of
    # callbacks, before the loop polls the socket of the other one.
    monkeypatch.setattr(connections, "_wait_for_next_turn", lambda: gevent.sleep(0))
    served = _serve_in_turns()
    assert served.index("waiting") == 10, served


def test_a_request_whose_read_blocked_is_served_in_the_same_turn() -> None:
    loop = gevent.get_hub().loop
    sock, other = gevent.socket.socketpair()
    take_turn(sock)  # a new connection
    record_answer(sock)
    gevent.sleep(0.01)  # its next read blocked: the loop turned meanwhile
    before = loop.iteration
    take_turn(sock)
    assert loop.iteration == before  # no wait for the next turn
    record_answer(sock)
    take_turn(sock)  # answered in this very turn: waits for the next one
    assert loop.iteration > before
    sock.close()
    other.close()
