"""When a failed callback is tried again: exponential backoff with full jitter.

After the ``n``-th failed attempt the next one waits a random time from 0 to
``base * 2 ** (n - 1)`` seconds, the bound doubling each time: spread at random, the retries of
many callbacks that failed together (a receiver that was down) do not come back together. With
the defaults (``CALLBACK_BACKOFF_SECONDS`` 30, ``CALLBACK_MAX_ATTEMPTS`` 8) the bounds are
30, 60, ..., 1920 s: the last attempt comes at most about an hour (3810 s) after the first.
"""

from __future__ import annotations

import random
from collections.abc import Callable

__all__ = ["retry_bound", "retry_delay", "schedule_bounds"]


def retry_bound(failed_attempts: int, base: float) -> float:
    """The longest wait after ``failed_attempts`` (1 or more) failed attempts, in seconds."""
    return base * 2.0 ** (max(failed_attempts, 1) - 1)


def retry_delay(
    failed_attempts: int, base: float, uniform: Callable[[float, float], float] = random.uniform
) -> float:
    """The wait before the next attempt: uniform from 0 to ``retry_bound`` (full jitter)."""
    return uniform(0.0, retry_bound(failed_attempts, base))


def schedule_bounds(max_attempts: int, base: float) -> list[float]:
    """The bound of each wait of a callback that fails ``max_attempts`` times (one fewer than
    its attempts); their sum is the longest a callback can stay pending."""
    return [retry_bound(n, base) for n in range(1, max_attempts)]
