"""Polling until a condition holds: the one wait loop of the stack tools and the tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

__all__ = ["wait_until"]

TRANSIENT: tuple[type[Exception], ...] = (httpx.HTTPError, OSError)
"""Errors a condition may raise while what it probes is still starting."""


def wait_until(
    condition: Callable[[], Any],
    timeout: float,
    interval: float = 0.1,
    what: str = "condition",
    transient: tuple[type[Exception], ...] = TRANSIENT,
) -> Any:
    """Poll ``condition`` until it returns a truthy value and return that value.

    Exceptions in ``transient`` count as "not yet"; any other exception propagates (a
    condition raises ``AssertionError`` to give up early, e.g. when the process it waits for
    exited). Raises ``TimeoutError`` naming ``what`` (and the last transient error) after
    ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = condition()
        except transient as e:
            last_error = e
        else:
            if value:
                return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what} not met within {timeout:g} s (last error: {last_error})")
        time.sleep(interval)
