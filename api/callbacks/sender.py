"""One callback attempt over HTTP: POST the body with its headers, and say how it went.

The receiver's answer body is not read (a 2xx is all that counts), redirects are not followed
(a 3xx is a failure: the URL checked at submit is the only one a callback goes to), and the
whole attempt, connecting included, is bounded by one timeout.
"""

from __future__ import annotations

import asyncio
from typing import Final

import httpx

from api.callbacks.signing import EVENT_ID_HEADER, SIGNATURE_HEADER, event_id, sign

__all__ = ["USER_AGENT", "callback_headers", "post_callback"]

USER_AGENT: Final = "conveyor-callbacks"
_MAX_ERROR = 200


def callback_headers(secret: str, task_id: str, status: str, body: bytes) -> dict[str, str]:
    """The headers of a callback POST: JSON, our user agent, the event id and, with a
    ``secret``, the signature of ``body`` made now."""
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_ID_HEADER: event_id(task_id, status),
    }
    if secret:
        headers[SIGNATURE_HEADER] = sign(secret, body)
    return headers


def _describe(error: Exception) -> str:
    text = str(error) or type(error).__name__
    if isinstance(error, httpx.ConnectError):
        return f"connection failed: {text}"[:_MAX_ERROR]
    return f"{type(error).__name__}: {text}"[:_MAX_ERROR]


async def post_callback(
    client: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str], seconds: float
) -> str | None:
    """POST ``body`` to ``url``; None when the receiver answered 2xx within ``seconds``,
    else a short account of the failure ("HTTP 503", "timeout after 10 s", "connection failed:
    ...")."""
    try:
        async with (
            asyncio.timeout(seconds),
            client.stream("POST", url, content=body, headers=headers, timeout=seconds) as response,
        ):
            status = response.status_code
    except (TimeoutError, httpx.TimeoutException):
        return f"timeout after {seconds:g} s"
    except (httpx.HTTPError, httpx.InvalidURL, OSError) as e:
        return _describe(e)
    if 200 <= status < 300:
        return None
    return f"HTTP {status}"
