"""Cross-origin access for browser clients (``CORS_ORIGINS``).

Empty (the default), the gateway sends no CORS header at all. Set, Starlette's
``CORSMiddleware`` wraps the whole app, outside the ``Edge``: a preflight (``OPTIONS`` with
``Origin`` and ``Access-Control-Request-Method``) is answered there, so it needs no API key and
takes no place among the requests in flight, and every other answer (the predict fast path,
``/v2``, the edge's own 401, 413 and 429) carries the headers a browser needs to read it:
``Access-Control-Allow-Origin`` and, exposed to scripts, ``X-Request-ID``, ``Retry-After`` and
the binary extension's ``Inference-Header-Content-Length``. A 429 the HTTP protocol sends
before the app (``api.edge.Admission``) carries the same ones (``CorsPolicy.headers_for``).

A preflight the policy refuses (another origin, method or header) is a 400 with the JSON error
of its path's API (``cors_refused``), not Starlette's plain text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conveyor.web import error_body

__all__ = ["ALLOWED_HEADERS", "ALLOWED_METHODS", "EXPOSED_HEADERS", "CorsPolicy"]

ALLOWED_METHODS: Final = ("GET", "POST", "DELETE", "OPTIONS")
"""The methods the API serves."""
ALLOWED_HEADERS: Final = (
    "Authorization",
    "Content-Type",
    "Content-Encoding",
    "Idempotency-Key",
    "X-Request-ID",
    "Inference-Header-Content-Length",
)
"""Request headers a page may send (besides the CORS-safelisted ones)."""
EXPOSED_HEADERS: Final = ("X-Request-ID", "Retry-After", "Inference-Header-Content-Length")
"""Response headers a page's script may read (besides the CORS-safelisted ones)."""
MAX_AGE: Final = 600
"""Seconds a browser may reuse a preflight's answer."""


@dataclass(frozen=True)
class CorsPolicy:
    """The origins allowed to call the gateway from a browser (``*``: any); none, no CORS."""

    origins: tuple[str, ...] = ()

    @property
    def enabled(self) -> bool:
        """Whether the gateway speaks CORS at all."""
        return bool(self.origins)

    def allows(self, origin: str) -> bool:
        """Whether a page of ``origin`` may read the gateway's answers."""
        return "*" in self.origins or origin in self.origins

    def headers_for(self, origin: bytes) -> tuple[tuple[bytes, bytes], ...]:
        """The CORS headers of an answer (not a preflight's) to a request from ``origin``, as
        ``CORSMiddleware`` adds them; none for an origin the policy does not allow."""
        if not self.enabled or not self.allows(origin.decode("latin-1")):
            return ()
        exposed = (b"access-control-expose-headers", ", ".join(EXPOSED_HEADERS).encode())
        if "*" in self.origins:
            return ((b"access-control-allow-origin", b"*"), exposed)
        return ((b"access-control-allow-origin", origin), exposed, (b"vary", b"Origin"))

    def install(self, app: FastAPI) -> None:
        """Wrap ``app`` in the CORS middleware (outermost: add it after every other one);
        nothing when no origin is allowed."""
        if not self.enabled:
            return
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(self.origins),
            allow_methods=list(ALLOWED_METHODS),
            allow_headers=list(ALLOWED_HEADERS),
            expose_headers=list(EXPOSED_HEADERS),
            max_age=MAX_AGE,
        )
        app.add_middleware(JsonPreflightRefusals)


def _is_preflight(scope: Scope) -> bool:
    if scope["method"] != "OPTIONS":
        return False
    names = {name for name, _ in scope["headers"]}
    return b"origin" in names and b"access-control-request-method" in names


class JsonPreflightRefusals:
    """An ASGI middleware around ``CORSMiddleware``: its refusal of a preflight (a plain-text
    400) becomes the JSON error of the path's API, its CORS headers kept."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _is_preflight(scope):
            await self.app(scope, receive, send)
            return
        refused: Message | None = None

        async def send_json(message: Message) -> None:
            nonlocal refused
            if message["type"] == "http.response.start" and message["status"] >= 400:
                refused = message
                return
            if refused is None or message["type"] != "http.response.body":
                await send(message)
                return
            reason = bytes(message.get("body", b"")).decode("latin-1")
            text = f"CORS preflight refused ({reason}); CORS_ORIGINS sets what is allowed"
            if scope["path"].startswith("/v2"):
                document: object = {"error": text}
            else:
                document = error_body("cors_refused", text, model=None, field=None)
            body = json.dumps(document).encode()
            kept = [
                (name, value)
                for name, value in refused.get("headers", [])
                if name.lower() not in (b"content-type", b"content-length")
            ]
            headers = [
                *kept,
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ]
            await send({"type": "http.response.start", "status": refused["status"],
                        "headers": headers})  # fmt: skip
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, send_json)
