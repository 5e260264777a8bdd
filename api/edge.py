"""The gateway's edge: what every request goes through before any route runs.

``Admission`` is the in-flight bound of the process; the HTTP protocol consults it before a
request reaches the app (``conveyor.http_protocol.Gate``). ``Edge`` is one plain ASGI
middleware (cheaper than a stack of them) that
- notes the arrival time, from which a request's ``timeout`` counts;
- gives the request an id (the client's ``X-Request-ID`` if it is sane, else a new one) and
  echoes it in the response;
- bounds the requests in progress (``MAX_INFLIGHT``): past it, a 429 with ``Retry-After`` at
  once, before the body is read;
- refuses a body over ``MAX_BODY_BYTES`` (413), by its Content-Length or as it streams in;
- checks the API key (``API_KEYS``) on predict, tasks, models, ``/v2`` and ``/v1``; health
  stays open;
- opens the request's log context (``conveyor.logs``) and, with metrics on, counts the
  request by endpoint, model, version and outcome, with its latency;
- with tracing on (``conveyor.tracing``), runs the request in an HTTP server span that
  continues the client's ``traceparent``, and answers the span's ``traceparent``.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import secrets
import time
from collections.abc import Iterable, MutableMapping
from typing import Any

from starlette.datastructures import State
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.cors import CorsPolicy
from api.exceptions import PayloadTooLarge
from conveyor import logs, tracing
from conveyor.http_protocol import Answer
from conveyor.metrics import GatewayMetrics
from conveyor.web import error_response

__all__ = [
    "UNTRACED",
    "Admission",
    "Edge",
    "FastPath",
    "arrival_of",
    "bearer_authorized",
    "endpoint_of",
    "read_body",
    "request_id_for",
    "request_id_of",
    "route_of",
]

_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:@/+=-]{1,128}")
_OPEN_PATHS = (
    "/healthz",
    "/readyz",
    "/metrics",
    "/dashboard",
    "/v2/health/",
    "/docs",
    "/openapi.json",
)
_PROTECTED_PREFIXES = ("/predict", "/tasks", "/models", "/v2", "/v1")
UNTRACED = ("/healthz", "/readyz", "/metrics", "/v2/health/")
"""Paths probes and scrapers call every few seconds: never traced (their spans would bury the
requests' traces)."""

logger = logging.getLogger(__name__)


def endpoint_of(path: str) -> str:
    """The ``endpoint`` label of a path: a handful of values, whatever the path holds."""
    if path.startswith("/predict/"):
        return "predict"
    if path.startswith("/v2/"):
        return "v2_infer" if path.endswith("/infer") else "v2"
    if path.startswith("/v1/"):
        return "openai"
    for prefix, name in _ENDPOINTS:
        if path.startswith(prefix):
            return name
    return "other"


_ENDPOINTS = (
    ("/tasks/", "tasks"),
    ("/models", "models"),
    ("/dashboard", "dashboard"),
    ("/metrics", "metrics"),
    ("/healthz", "health"),
    ("/readyz", "health"),
)


_ROUTES = (
    ("/predict/", "/predict/{model}"),
    ("/tasks/", "/tasks/{task_id}"),
    ("/models/", "/models/{model}"),
    ("/v2/models/", "/v2/models/{model}"),
)


def route_of(path: str) -> str:
    """The route template of a path, for a span's name and ``http.route``: a handful of values
    whatever the path holds (ids and model names replaced by their parameter)."""
    for prefix, template in _ROUTES:
        if path.startswith(prefix):
            rest = path[len(prefix) :]
            _, slash, tail = rest.partition("/")
            if prefix == "/v2/models/" and slash:
                if tail.startswith("versions/"):
                    tail = "versions/{version}/" + tail[len("versions/") :].partition("/")[2]
                return f"{template}/{tail}".rstrip("/")
            return f"{template}/{tail}" if slash and tail else template
    return path if len(path) <= 64 else "other"


def arrival_of(scope: Scope) -> float:
    """When the request arrived (``time.monotonic()``); now, for a request the edge did not see."""
    value = scope.get("state", {}).get("arrival")
    return float(value) if value is not None else time.monotonic()


class FastPath:
    """Base of the ASGI middlewares inside FastAPI's stack that answer a hot route themselves,
    without the router's path matching and the dependency solver, and pass every other request
    on to ``app``. ``state``: the application's state (settings, catalog, dispatcher)."""

    def __init__(self, app: ASGIApp, state: State) -> None:
        self.app = app
        self.state = state


async def read_body(receive: Receive) -> bytes:
    """A request's whole body from its ASGI channel; raises ``ClientDisconnect`` when the client
    goes away first."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def request_id_of(scope: Scope) -> str:
    """The request's id (empty for a request the edge did not see)."""
    return str(scope.get("state", {}).get("request_id", ""))


_ID_PREFIX = os.urandom(8).hex()
_ID_SEQUENCE = itertools.count()
_RESERVED = "conveyor.reserved"  # scope key: the protocol admitted the request (``Edge.reserve``)


def _request_id(given: bytes) -> str:
    """The client's ``X-Request-ID`` if it is sane, else a new id: 32 hex digits, a random
    prefix per process and a counter (unique without ``uuid4``'s cost on every request; it
    correlates logs, it is no secret)."""
    if given and _REQUEST_ID.fullmatch(given):
        return given.decode()
    return f"{_ID_PREFIX}{next(_ID_SEQUENCE) & 0xFFFFFFFFFFFFFFFF:016x}"


def request_id_for(given: bytes) -> str:
    """A request's id from the client's ``x-request-id`` (empty: none), for another front end
    than HTTP (the gRPC service): the same rules and the same sequence as the edge's."""
    return _request_id(given)


def bearer_authorized(authorization: bytes, keys: tuple[bytes, ...]) -> bool:
    """Whether an ``Authorization`` value is ``Bearer <key>`` with one of ``keys``. Every key
    is compared, each in constant time, so timing tells nothing about which one matched."""
    scheme, _, key = authorization.partition(b" ")
    if scheme.lower() != b"bearer":
        return False
    key = key.strip()
    matches = [secrets.compare_digest(key, expected) for expected in keys]
    return any(matches)


def _refuse(
    path: str, status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """An edge refusal in the shape of the path's API: the Open Inference Protocol's
    ``{"error": "<message>"}`` under ``/v2``, OpenAI's ``{"error": {"message", "type",
    "param", "code"}}`` under ``/v1``, the gateway's error object elsewhere."""
    shape = _shape(path)
    if shape == "/v2":
        return JSONResponse({"error": message}, status_code=status, headers=headers)
    if shape == "/v1":
        kind = {401: "authentication_error", 429: "rate_limit_error"}.get(
            status, "server_error" if status >= 500 else "invalid_request_error"
        )
        body = {"message": message, "type": kind, "param": None, "code": code}
        return JSONResponse({"error": body}, status_code=status, headers=headers)
    return error_response(status, code, message, headers=headers, model=None, field=None)


def _shape(path: str) -> str:
    """Which API's error shape a path answers in: ``/v2``, ``/v1`` or ``/`` (the gateway's)."""
    for prefix in ("/v2", "/v1"):
        if path.startswith(prefix):
            return prefix
    return "/"


def _prerendered(response: JSONResponse) -> Answer:
    """A response's status, headers and body, to send again and again as they are."""
    return response.status_code, tuple(response.raw_headers), bytes(response.body)


class Admission:
    """The in-flight bound (``MAX_INFLIGHT``), kept for the whole gateway process.

    It is the HTTP protocol's ``Gate`` (``conveyor.http_protocol``): the protocol asks it,
    once a request's head is read, whether to refuse the request with the prerendered 429
    before any ASGI work, and reserves an admitted request's place before its app call runs.
    ``Edge`` turns a reservation into the request's place in flight, and refuses (the same
    429) what reaches it past the bound some other way.
    """

    def __init__(
        self,
        max_inflight: int,
        *,
        retry_after: int = 1,
        metrics: GatewayMetrics | None = None,
        cors: CorsPolicy | None = None,
    ) -> None:
        self.max_inflight = max_inflight
        self.metrics = metrics
        self.cors = cors if cors is not None and cors.enabled else None
        self.inflight = 0
        self.reserved = 0  # admitted by the server's protocol, not yet in Edge.__call__
        if metrics is not None:
            metrics.track_inflight(lambda: self.inflight)
        busy = f"the gateway has its limit of {max_inflight} requests in progress; retry later"
        self._busy = {
            shape: _prerendered(
                _refuse(shape, 429, "overloaded", busy, {"Retry-After": str(retry_after)})
            )
            for shape in ("/", "/v2", "/v1")
        }

    def sheds(self, path: str) -> bool:
        """Whether a request for ``path`` is refused at once: the gateway has ``MAX_INFLIGHT``
        requests in progress (or admitted) and the path is not one that stays open (health,
        metrics, docs)."""
        return self.inflight + self.reserved >= self.max_inflight and self.bounded(path)

    @staticmethod
    def bounded(path: str) -> bool:
        """Whether requests for ``path`` count against ``MAX_INFLIGHT``."""
        return not path.startswith(_OPEN_PATHS)

    def reserve(self, scope: MutableMapping[str, Any]) -> None:
        """Count a request the server's protocol admitted (``sheds`` was false) before its
        ASGI task runs, so that a burst read in one turn of the loop cannot all pass the bound;
        ``Edge`` turns the reservation into the request's place in flight."""
        self.reserved += 1
        scope[_RESERVED] = True

    def refusal(
        self, path: str, headers: Iterable[tuple[bytes, bytes]], *, cors: bool = True
    ) -> tuple[int, tuple[tuple[bytes, bytes], ...], bytes, bytes]:
        """The prerendered 429 past ``MAX_INFLIGHT`` for ``path``: status, headers, request id
        (the client's ``X-Request-ID`` among the request's ``headers``, lower-case names as
        ASGI has them, if sane, else a new one; its header is the caller's to add) and body;
        counted in the metrics as ``gateway_full``. With ``cors`` (a refusal sent below the
        app, outside its CORS middleware), an allowed ``Origin`` gets its CORS headers."""
        given = origin = b""
        for name, value in headers:
            if name == b"x-request-id":
                given = value
            elif name == b"origin":
                origin = value
        status, answer_headers, body = self._busy[_shape(path)]
        if cors and origin and self.cors is not None:
            answer_headers += self.cors.headers_for(origin)
        if self.metrics is not None:
            self.metrics.series(endpoint_of(path)).observe(status, 0.0, "gateway_full")
        return status, answer_headers, _request_id(given).encode(), body

    @staticmethod
    def protocol_answer(url: bytes, status: int, code: str, message: str) -> Answer:
        """An error answered below the app (bytes that are not HTTP/1.1, a head too large, a
        failure of the app before its response), in the shape of the path's API as far as the
        path was read (``url``, possibly empty): the HTTP protocol's ``error_answer``."""
        path = _shape(url.decode("latin-1"))
        return _prerendered(_refuse(path, status, code, message))


class Edge:
    """An ASGI middleware: arrival time, request id, in-flight bound (through ``admission``),
    body limit, API keys, log context and metrics (see the module doc)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        admission: Admission,
        max_body_bytes: int,
        api_keys: tuple[str, ...] = (),
        metrics: GatewayMetrics | None = None,
    ) -> None:
        self.app = app
        self.admission = admission
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self._keys = tuple(key.encode() for key in api_keys)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        tracer = tracing.tracer
        if tracer is not None and not scope["path"].startswith(UNTRACED):
            await self._traced(tracer, scope, receive, send)
            return
        await self._serve(scope, receive, send)

    async def _traced(
        self, tracer: tracing.Tracer, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """``_serve`` in an HTTP server span: the client's ``traceparent`` continued, the
        span's sent back; route, model, version and status noted; a 5xx is an error."""
        headers = dict(scope["headers"])
        traceparent = headers.get(b"traceparent")
        tracestate = headers.get(b"tracestate")
        method: str = scope["method"]
        route = route_of(scope["path"])
        span, traceparent = tracing.server_span(
            tracer,
            f"{method} {route}",
            None if traceparent is None else traceparent.decode("latin-1"),
            None if tracestate is None else tracestate.decode("latin-1"),
            {
                "http.request.method": method,
                "http.route": route,
                "url.path": scope["path"],
                "url.scheme": scope.get("scheme", "http"),
            },
        )
        echo = (b"traceparent", traceparent.encode())
        if span is None:  # not sampled: its traceparent echoed, nothing more
            await self._serve(scope, receive, send, echo=echo)
            return
        status = 500

        async def send_traced(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), echo]
            await send(message)

        token = tracing.activate(span)
        try:
            await self._serve(scope, receive, send_traced, sampled=True)
        except BaseException as e:
            span.record_exception(e)
            raise
        finally:
            tracing.deactivate(token)
            span.set_attribute("http.response.status_code", status)
            if status >= 500:
                tracing.fail(span, f"HTTP {status}", str(status))
            context = logs.current()
            if context is not None:
                for attribute, value in (
                    (tracing.REQUEST_ID, context.request_id),
                    (tracing.MODEL, context.model),
                    (tracing.VERSION, context.version),
                    (tracing.TASK_ID, context.task_id),
                ):
                    if value:
                        span.set_attribute(attribute, value)
            span.end()

    async def _serve(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        sampled: bool = False,
        echo: tuple[bytes, bytes] | None = None,
    ) -> None:
        """The request past the edge's checks (``sampled``: it runs in a sampled span, whose
        trace id its latency bucket keeps as an exemplar; ``echo``: one more response header,
        an unsampled request's ``traceparent``)."""
        path: str = scope["path"]
        admission = self.admission
        if scope.pop(_RESERVED, False):
            admission.reserved -= 1  # admitted already; it becomes in flight below, no await
        elif admission.sheds(path):
            await self._refuse_busy(scope, send)
            return
        arrival = time.monotonic()
        headers = dict(scope["headers"])
        request_id = _request_id(headers.get(b"x-request-id", b""))
        state: dict[str, Any] = scope.setdefault("state", {})
        state["arrival"] = arrival
        state["request_id"] = request_id
        echoes = [(b"x-request-id", request_id.encode())]
        if echo is not None:
            echoes.append(echo)
        context = logs.begin(request_id)
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), *echoes]
            await send(message)

        if path.startswith(_OPEN_PATHS):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                self._done(scope, context, status, arrival, "", sampled)
            return
        refusal: JSONResponse | None = None
        if self._keys and path.startswith(_PROTECTED_PREFIXES) and not self._authorized(headers):
            refusal = _refuse(
                path,
                401,
                "unauthorized",
                "missing or wrong API key",
                {"WWW-Authenticate": "Bearer"},
            )
        else:
            length = headers.get(b"content-length")
            if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
                refusal = _refuse(
                    path,
                    413,
                    "body_too_large",
                    f"the body is larger than {self.max_body_bytes} bytes",
                )
        if refusal is not None:
            await refusal(scope, receive, send_with_id)
            self._done(scope, context, status, arrival, "gateway_full", sampled)
            return
        admission.inflight += 1
        try:
            await self.app(scope, self._limited(receive), send_with_id)
        finally:
            admission.inflight -= 1
            self._done(scope, context, status, arrival, "queue_full", sampled)

    async def _refuse_busy(self, scope: Scope, send: Send) -> None:
        """The 429 past ``MAX_INFLIGHT``. Under overload most answers are this one, so it is
        sent prerendered before any other work of the edge: the less it costs, the more CPU is
        left to the requests the gateway accepted. The API key is not checked first: a refusal
        gives nothing away."""
        # (The CORS middleware, outside the edge, adds the CORS headers.)
        status, headers, request_id, body = self.admission.refusal(
            scope["path"], scope["headers"], cors=False
        )
        await send({"type": "http.response.start", "status": status,
                    "headers": [*headers, (b"x-request-id", request_id)]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})

    def _done(
        self,
        scope: Scope,
        context: logs.LogContext,
        status: int,
        arrival: float,
        reason: str,
        sampled: bool = False,
    ) -> None:
        """Count the finished request; at debug level, log it (an access log off by default)."""
        if self.metrics is None and not logger.isEnabledFor(logging.DEBUG):
            return
        seconds = time.monotonic() - arrival
        path: str = scope["path"]
        if self.metrics is not None:
            endpoint = endpoint_of(path)
            series = self.metrics.series(endpoint, context.model, context.version)
            trace_id = tracing.current_trace_id() if sampled else ""
            series.observe(status, seconds, reason, trace_id)
            if endpoint == "tasks" and status == 200 and scope["method"] == "DELETE":
                self.metrics.cancelled.labels(context.model, context.version).inc()
        logger.debug("%s %s -> %d in %.1f ms", scope["method"], path, status, seconds * 1000)

    def _authorized(self, headers: dict[bytes, bytes]) -> bool:
        return bearer_authorized(headers.get(b"authorization", b""), self._keys)

    def _limited(self, receive: Receive) -> Receive:
        received = 0
        limit = self.max_body_bytes

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise PayloadTooLarge(f"the body is larger than {limit} bytes")
            return message

        return limited
