"""How the gateway's connections share a gunicorn gevent worker (gateway/connections.py)."""

from __future__ import annotations

import gevent
import gevent.socket

from gateway.connections import _take_turns


def _serve_in_turns(take_turns) -> list[str]:
    """One connection whose next request is always already read (it never blocks on its socket)
    and one whose request arrives on its socket while the first is being served: the order in
    which their requests are served."""
    served: list[str] = []
    ours, theirs = gevent.socket.socketpair()

    def waiting_on_its_socket() -> None:
        ours.recv(1)
        served.append("waiting")

    def always_ready() -> None:
        for _ in range(10):
            take_turns()
            served.append("ready")

    waiting = gevent.spawn(waiting_on_its_socket)
    gevent.sleep(0)  # it is now blocked in recv
    theirs.sendall(b"x")  # its request has arrived; the loop has not polled it yet
    ready = gevent.spawn(always_ready)
    gevent.joinall([waiting, ready], timeout=10, raise_error=True)
    ours.close()
    theirs.close()
    return served


def test_a_connection_waiting_on_its_socket_is_served_within_one_turn_of_a_busy_one() -> None:
    served = _serve_in_turns(_take_turns)
    assert served.index("waiting") <= 1, served


def test_a_yield_to_the_callback_queue_would_let_the_busy_connection_go_again_and_again() -> None:
    # Why _take_turns is a timer: gevent.sleep(0) resumes the busy greenlet in the same batch of
    # callbacks, before the loop polls the socket of the other one.
    served = _serve_in_turns(lambda: gevent.sleep(0))
    assert served.index("waiting") == 10, served
