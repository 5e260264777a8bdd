"""An HTTP server span per request, as a plain ASGI middleware (the registry's; the gateway's
edge does the same in its own middleware).

With tracing off (``conveyor.tracing.tracer`` is None) a request passes straight through. On,
each HTTP request runs in a server span named ``<method> <route>`` that continues the client's
``traceparent``; the response carries the span's ``traceparent``; a 5xx marks it failed.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conveyor import tracing

__all__ = ["ServerSpans"]


class ServerSpans:
    """ASGI middleware: each HTTP request in a server span (see the module doc). ``route_of``
    turns a path into its route template (ids replaced), for the span's name; paths starting
    with one of ``untraced`` (probes, scrapes) are not traced, nor the (method, route) pairs of
    ``untraced_routes`` (periodic calls such as heartbeats: a trace each would bury the
    others)."""

    def __init__(
        self,
        app: ASGIApp,
        route_of: Callable[[str], str] = lambda path: path,
        untraced: tuple[str, ...] = ("/healthz", "/readyz", "/metrics"),
        untraced_routes: frozenset[tuple[str, str]] = frozenset(),
    ) -> None:
        self.app = app
        self.route_of = route_of
        self.untraced = untraced
        self.untraced_routes = untraced_routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        tracer = tracing.tracer
        if tracer is None or scope["type"] != "http" or scope["path"].startswith(self.untraced):
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        route = self.route_of(scope["path"])
        if (method, route) in self.untraced_routes:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        span, traceparent = tracing.server_span(
            tracer,
            f"{method} {route}",
            headers.get(b"traceparent", b"").decode("latin-1"),
            headers.get(b"tracestate", b"").decode("latin-1"),
            {
                "http.request.method": method,
                "http.route": route,
                "url.path": scope["path"],
                "url.scheme": scope.get("scheme", "http"),
            },
        )
        echo = (b"traceparent", traceparent.encode())
        status = 500

        async def traced_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), echo]
            await send(message)

        if span is None:  # not sampled: its traceparent echoed, nothing more
            await self.app(scope, receive, traced_send)
            return
        try:
            with tracing.current(span):
                await self.app(scope, receive, traced_send)
        except BaseException as e:
            span.record_exception(e)
            raise
        finally:
            span.set_attribute("http.response.status_code", status)
            if status >= 500:
                tracing.fail(span, f"HTTP {status}", str(status))
            span.end()
