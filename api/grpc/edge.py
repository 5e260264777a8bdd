"""What every call of the inference service goes through: the gRPC counterpart of
``api.edge.Edge``, sharing its state and its rules.

- The arrival time, from which the request's timeout counts, and the call's deadline.
- The request id: the client's ``x-request-id`` metadata if it is sane, else a new one; sent
  back in the initial metadata, and the log context of the call.
- API keys (``API_KEYS``): ``authorization: Bearer <key>`` metadata, else UNAUTHENTICATED.
- The gateway's in-flight bound (``MAX_INFLIGHT``, the same ``Admission`` the HTTP requests
  count against): past it, RESOURCE_EXHAUSTED at once.
- Every error a proper status (``api.grpc.status``), with ``retry-after`` trailing metadata
  where REST sends ``Retry-After``.
- Metrics: each call counted like an HTTP request, under the endpoint ``grpc_infer``
  (ModelInfer) or ``grpc`` (the other calls).
- Tracing (``conveyor.tracing``), when on: each call a server span that continues the client's
  ``traceparent`` metadata; the span's ``traceparent`` is sent back in the initial metadata.

Liveness and readiness (``ServerLive``, ``ServerReady``) stay open, as ``/v2/health/*``: no key,
not bounded.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import grpc

from api.edge import Admission, bearer_authorized, request_id_for
from api.exceptions import Overloaded, Unauthorized
from api.grpc.status import failure_of
from conveyor import logs, tracing
from conveyor.metrics import GatewayMetrics

__all__ = ["REQUEST_ID", "Call", "CallEdge", "Method"]

REQUEST_ID: Final = "x-request-id"
"""The metadata key of the request id, both ways."""

T = TypeVar("T")


@dataclass(frozen=True)
class Method:
    """A method of the service as the edge treats it."""

    path: str
    """``/package.Service/Method``, the call's HTTP/2 path."""
    endpoint: str
    """The ``endpoint`` label of its metrics."""
    open: bool = False
    """No API key needed and not counted against ``MAX_INFLIGHT`` (health)."""


@dataclass(frozen=True)
class Call:
    """What the edge learnt about a call, for the method's own work."""

    arrival: float
    """``time.monotonic()`` when the call reached the servicer."""
    request_id: str
    deadline: float | None
    """Seconds left before the call's gRPC deadline at its arrival; None without one."""


class CallEdge:
    """Runs each call of the inference service through the edge (see the module doc)."""

    def __init__(
        self,
        admission: Admission,
        *,
        api_keys: tuple[str, ...] = (),
        retry_after: int = 1,
        metrics: GatewayMetrics | None = None,
    ) -> None:
        self.admission = admission
        self.metrics = metrics
        self.retry_after = retry_after
        self._keys = tuple(key.encode() for key in api_keys)

    async def serve(self, context: Any, method: Method, work: Callable[[Call], Awaitable[T]]) -> T:
        """Answer one call: ``work``'s result, or the call aborted with the status of what
        ``work`` (or the edge) raised."""
        arrival = time.monotonic()
        metadata = {key: value for key, value in context.invocation_metadata() or ()}
        request_id = request_id_for(_text(metadata.get(REQUEST_ID)).encode())
        log = logs.begin(request_id)
        tracer = tracing.tracer
        if tracer is None:
            await context.send_initial_metadata(((REQUEST_ID, request_id),))
            return await self._serve(context, method, work, arrival, request_id, log, metadata)
        service, _, name = method.path.lstrip("/").partition("/")
        span, traceparent = tracing.server_span(
            tracer,
            f"{service}/{name}",
            _text(metadata.get(tracing.TRACEPARENT)),
            _text(metadata.get(tracing.TRACESTATE)),
            {
                tracing.RPC_SYSTEM: "grpc",
                tracing.RPC_SERVICE: service,
                tracing.RPC_METHOD: name,
                tracing.REQUEST_ID: request_id,
            },
        )
        answered = ((REQUEST_ID, request_id), (tracing.TRACEPARENT, traceparent))
        if span is None:  # not sampled: its traceparent sent back, nothing more
            await context.send_initial_metadata(answered)
            return await self._serve(context, method, work, arrival, request_id, log, metadata)
        token = tracing.activate(span)
        try:
            await context.send_initial_metadata(answered)
            return await self._serve(
                context, method, work, arrival, request_id, log, metadata, span
            )
        finally:
            tracing.deactivate(token)
            for attribute, value in ((tracing.MODEL, log.model), (tracing.VERSION, log.version),
                                     (tracing.TASK_ID, log.task_id)):  # fmt: skip
                if value:
                    span.set_attribute(attribute, value)
            span.end()

    async def _serve(
        self, context: Any, method: Method, work: Callable[[Call], Awaitable[T]], arrival: float,
        request_id: str, log: logs.LogContext, metadata: dict[str, Any],
        span: tracing.Span | None = None,
    ) -> T:  # fmt: skip
        """The call's keys, bound, work and metrics (``serve`` without its span)."""
        status, reason, counted = 200, "queue_full", False
        try:
            if not method.open:
                if self._keys and not bearer_authorized(
                    _text(metadata.get("authorization")).encode(), self._keys
                ):
                    raise Unauthorized(
                        "missing or wrong API key: send the metadata 'authorization: Bearer <key>'"
                    )
                if self.admission.sheds(method.path):
                    reason = "gateway_full"
                    raise Overloaded(
                        f"the gateway has its limit of {self.admission.max_inflight} requests "
                        "in progress; retry later",
                        retry_after=self.retry_after,
                    )
                self.admission.inflight += 1
                counted = True
            return await work(Call(arrival, request_id, context.time_remaining()))
        except grpc.aio.AbortError:
            raise
        except asyncio.CancelledError:
            # The client went away, or its deadline passed first.
            remaining = context.time_remaining()
            status = 504 if remaining is not None and remaining <= 0 else 499
            raise
        except Exception as exc:
            failure = failure_of(exc)
            status = failure.http_status
            if span is not None:
                span.set_attribute(tracing.RPC_GRPC_STATUS, failure.code.value[0])
                if status >= 500:
                    tracing.fail(span, failure.message, failure.code.name)
            trailing = (("retry-after", str(failure.retry_after)),) if failure.retry_after else ()
            await context.abort(failure.code, failure.message, trailing)
            raise AssertionError("context.abort returned instead of raising") from exc
        finally:
            if counted:
                self.admission.inflight -= 1
            if self.metrics is not None:
                series = self.metrics.series(method.endpoint, log.model, log.version)
                trace_id = tracing.current_trace_id() if span is not None else ""
                series.observe(status, time.monotonic() - arrival, reason, trace_id)


def _text(value: str | bytes | None) -> str:
    if value is None:
        return ""
    return value.decode(errors="replace") if isinstance(value, bytes) else value
