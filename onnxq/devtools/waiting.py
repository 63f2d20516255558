"""Waiting for an event: poll a condition until it holds, or fail saying what never happened."""

from __future__ import annotations

import time
from collections.abc import Callable

POLL_SECONDS = 0.1


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Return as soon as `condition()` is true; raise AssertionError after `timeout` seconds.

    The timeout only bounds a wait for something that must happen; it is never what a test
    proves, so a slow machine makes a test slower, not wrong.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(POLL_SECONDS)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
