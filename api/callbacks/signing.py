"""The signature of a callback, and the id of the event it reports.

Each POST carries ``Conveyor-Signature: t=<unix seconds>,v1=<hex>``, where ``<hex>`` is the
HMAC-SHA256, keyed with ``CALLBACK_SECRET``, of the bytes ``f"{t}."`` followed by the body. A
receiver recomputes it over the body it got, compares in constant time, and refuses a ``t``
too far from its own clock (a replayed old POST). ``Conveyor-Event-ID`` names the task's final
event, ``<task_id>.<status>``: the same on every attempt, so a receiver that sees it twice (at
least once means a duplicate is possible) handles it once.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Final

__all__ = [
    "EVENT_ID_HEADER",
    "SIGNATURE_HEADER",
    "TOLERANCE_SECONDS",
    "event_id",
    "sign",
    "signature",
    "verify",
]

SIGNATURE_HEADER: Final = "Conveyor-Signature"
EVENT_ID_HEADER: Final = "Conveyor-Event-ID"
TOLERANCE_SECONDS: Final = 300
"""How far ``t`` may be from the receiver's clock, by default, for ``verify``."""


def event_id(task_id: str, status: str) -> str:
    """The id of a task's final event (``status``: done, failed or cancelled)."""
    return f"{task_id}.{status}"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``f"{timestamp}."`` + ``body`` keyed with ``secret``."""
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The ``Conveyor-Signature`` value of ``body``, signed now (or at ``timestamp``)."""
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1={signature(secret, t, body)}"


def verify(
    secret: str,
    body: bytes,
    header: str,
    *,
    now: float | None = None,
    tolerance: float = TOLERANCE_SECONDS,
) -> bool:
    """True when ``header`` is a ``Conveyor-Signature`` of ``body`` with ``secret`` whose ``t``
    is within ``tolerance`` seconds of ``now`` (default: the current time).

    Unknown parts of the header are ignored, and any ``v1`` that matches is enough, so a sender
    may add schemes or sign with two secrets while one replaces the other."""
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        name, sep, value = item.strip().partition("=")
        if sep:
            parts.setdefault(name, []).append(value)
    stamps = parts.get("t", [])
    if len(stamps) != 1 or not stamps[0].isdigit():
        return False
    t = int(stamps[0])
    if abs((time.time() if now is None else now) - t) > tolerance:
        return False
    expected = signature(secret, t, body).encode()
    return any(hmac.compare_digest(expected, v1.encode()) for v1 in parts.get("v1", []))
