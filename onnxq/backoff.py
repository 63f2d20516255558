"""The one retry delay formula: doubling from a base, optionally capped, optionally fully jittered.

Used by job callbacks (worker/callbacks.py), the drift webhook (onnxq/telemetry/drift_check.py)
and the predict task's retries of transient errors (worker/retry.py).
"""

from __future__ import annotations

import math
import random


def backoff_seconds(
    retries: int, base: float, *, cap: float | None = None, jitter: bool = False
) -> float:
    """Delay before retry `retries + 1`: base, 2·base, 4·base … at most `cap`.

    With `jitter` ("full jitter"), a uniform draw between 0 and that delay, so that many clients
    failing together do not retry together.
    """
    try:
        delay = base * 2**retries
    except OverflowError:  # past float range: no setting gets there, and the cap still holds
        delay = math.inf
    if cap is not None:
        delay = min(delay, cap)
    if jitter:
        delay = random.uniform(0, delay)
    return float(delay)
