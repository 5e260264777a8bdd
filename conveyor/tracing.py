"""Distributed tracing of every Conveyor service: OpenTelemetry, configured by the standard
``OTEL_*`` variables, with the W3C Trace Context carried across the queue.

Set-up (``configure``, once per serving process, after any fork): tracing is on only when an
OTLP endpoint is set (``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_ENDPOINT``)
and ``OTEL_SDK_DISABLED`` is not ``true``. The SDK reads the rest itself: the sampler
(``OTEL_TRACES_SAMPLER``, ``OTEL_TRACES_SAMPLER_ARG``; parent-based always-on by default), the
resource (``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_SERVICE_NAME``) and the exporter's options. A
service without a configured ``service.name`` reports under its own default
(``conveyor-gateway``, ``conveyor-registry``, ``conveyor-worker-<model>``). Spans leave in
batches (``BatchSpanProcessor``) over OTLP/HTTP; ``shutdown`` flushes them.

Off, the services pay one check of ``tracer`` per request or task: no span objects, no context
attached, nothing put in a ``Task``.

Propagation: W3C Trace Context only. The gateway continues a client's ``traceparent`` (and
``tracestate``) from the HTTP headers or the gRPC metadata, else starts a trace; it puts the
context of its request span in ``Task.trace_context`` (``inject``), with the publish time in
``Task.published_unix_nano``; a worker continues from there (``extract``). The response
carries ``traceparent`` back (``traceparent_of``).

Attribute names follow OpenTelemetry's semantic conventions (HTTP server spans, messaging spans
for publish and process, RPC for gRPC); the messaging ones are still "development" in the
conventions' package, so their names are spelled here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from contextlib import contextmanager
from contextvars import Token
from typing import Final

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.trace import (
    Link,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    Tracer,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import Attributes

__all__ = [
    "GATEWAY",
    "REGISTRY",
    "Context",
    "Link",
    "Span",
    "SpanKind",
    "Tracer",
    "activate",
    "configure",
    "current",
    "current_ids",
    "current_sampled",
    "current_trace_id",
    "deactivate",
    "extract",
    "fail",
    "flush",
    "inject",
    "install",
    "link_to",
    "publish_attributes",
    "server_span",
    "shutdown",
    "trace_id_of",
    "traceparent_of",
    "tracer",
    "worker_service",
]

GATEWAY: Final = "conveyor-gateway"
"""The gateway's default ``service.name``."""
REGISTRY: Final = "conveyor-registry"
"""The registry's default ``service.name``."""

TRACEPARENT: Final = "traceparent"
TRACESTATE: Final = "tracestate"

# Semantic-convention attribute names (messaging and RPC are not in the package's stable part).
MESSAGING_SYSTEM: Final = "messaging.system"
MESSAGING_OPERATION_TYPE: Final = "messaging.operation.type"
MESSAGING_OPERATION_NAME: Final = "messaging.operation.name"
MESSAGING_DESTINATION: Final = "messaging.destination.name"
MESSAGING_MESSAGE_ID: Final = "messaging.message.id"
MESSAGING_BATCH_COUNT: Final = "messaging.batch.message_count"
RPC_SYSTEM: Final = "rpc.system"
RPC_SERVICE: Final = "rpc.service"
RPC_METHOD: Final = "rpc.method"
RPC_GRPC_STATUS: Final = "rpc.grpc.status_code"
DB_SYSTEM: Final = "db.system.name"
DB_OPERATION: Final = "db.operation.name"
# Conveyor's own.
MODEL: Final = "conveyor.model"
VERSION: Final = "conveyor.model.version"
TASK_ID: Final = "conveyor.task.id"
REQUEST_ID: Final = "conveyor.request.id"
ATTEMPT: Final = "conveyor.task.attempt"

tracer: Tracer | None = None
"""The services' tracer while tracing is on; None when it is off (the one check of the hot
path)."""

_provider: TracerProvider | None = None
_PROPAGATOR = TraceContextTextMapPropagator()
_TRUE = ("true", "1", "yes", "on")


class _Ids(IdGenerator):
    """Random ids, whose next trace id ``server_span`` may fix: the one it asked the sampler
    about, so the span it then starts gets the same decision."""

    def __init__(self) -> None:
        self._random = RandomIdGenerator()
        self.next_trace_id: int | None = None

    def generate_span_id(self) -> int:
        return self._random.generate_span_id()

    def generate_trace_id(self) -> int:
        fixed, self.next_trace_id = self.next_trace_id, None
        return fixed if fixed is not None else self._random.generate_trace_id()

    def random_trace_id(self) -> int:
        """A new random trace id (not fixed)."""
        return self._random.generate_trace_id()

    def is_trace_id_random(self) -> bool:
        return True


_ids = _Ids()
_NO_PARENT: Final = Context()
"""The parent of a request that came without a trace context: none (a new trace)."""


def worker_service(model: str) -> str:
    """A model worker's default ``service.name``."""
    return f"conveyor-worker-{model}"


def endpoint_configured(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the environment asks for traces: an OTLP endpoint is set and the SDK is not
    disabled."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() in _TRUE:
        return False
    return bool(
        env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
        or env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    )


def configure(default_service: str) -> bool:
    """Turn tracing on in this process when the environment asks for it (see the module doc),
    reporting as ``default_service`` unless ``OTEL_SERVICE_NAME`` or ``OTEL_RESOURCE_ATTRIBUTES``
    names the service. Returns whether tracing is on. Call it in the process that serves (after
    a fork: the batch processor runs a thread)."""
    if not endpoint_configured():
        return False
    # Imported only when used: a service without tracing never loads the exporter.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    install(BatchSpanProcessor(OTLPSpanExporter()), default_service)
    return True


def install(processor: SpanProcessor, default_service: str) -> Tracer:
    """Trace through ``processor`` from now on (``configure`` passes the OTLP batch processor;
    tests pass the SDK's in-memory exporter), replacing an earlier set-up."""
    global tracer, _provider
    shutdown()
    resource = Resource.create()
    name = resource.attributes.get(SERVICE_NAME)
    if not isinstance(name, str) or name.startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: default_service}))
    provider = TracerProvider(resource=resource, shutdown_on_exit=True, id_generator=_ids)
    provider.add_span_processor(processor)
    _provider = provider
    tracer = provider.get_tracer("conveyor")
    return tracer


def shutdown() -> None:
    """Export the spans still held and turn tracing off (at a service's end)."""
    global tracer, _provider
    provider, _provider, tracer = _provider, None, None
    if provider is not None:
        provider.shutdown()


def flush(timeout_seconds: float = 5.0) -> None:
    """Export the spans still held, waiting at most ``timeout_seconds`` (a service's lifespan
    end: a forked child exits without running ``atexit``)."""
    if _provider is not None:
        _provider.force_flush(int(timeout_seconds * 1000))


def extract(traceparent: str | None, tracestate: str | None = None) -> Context | None:
    """The context a W3C ``traceparent`` (and ``tracestate``) continues; None without a valid
    one (a new trace starts)."""
    if not traceparent:
        return None
    carrier = {TRACEPARENT: traceparent}
    if tracestate:
        carrier[TRACESTATE] = tracestate
    context = _PROPAGATOR.extract(carrier)
    if not trace.get_current_span(context).get_span_context().is_valid:
        return None
    return context


def extract_from(carrier: Mapping[str, str]) -> Context | None:
    """``extract`` from a carrier holding ``traceparent``/``tracestate`` (``Task.trace_context``,
    gRPC metadata as a dict)."""
    return extract(carrier.get(TRACEPARENT), carrier.get(TRACESTATE))


def server_span(
    tracer: Tracer,
    name: str,
    traceparent: str | None,
    tracestate: str | None,
    attributes: Attributes,
    kind: SpanKind = SpanKind.SERVER,
) -> tuple[Span | None, str]:
    """A request's server span, continuing the client's ``traceparent``, and the
    ``traceparent`` to answer with.

    When the sampler drops the request, no span is made (None): the answer names the trace and
    a new span id with the sampled flag clear, as the SDK's non-recording span would, at a
    fraction of its cost (a dropped request is the common case of a low sampling ratio). The
    decision is the configured sampler's, asked once with the trace id the span then gets.
    """
    # A request's span starts from what the client sent, never from a span current here.
    parent = extract(traceparent, tracestate) or _NO_PARENT
    provider = _provider
    if provider is not None:
        if parent is _NO_PARENT:
            trace_id, random_id = _ids.random_trace_id(), True
        else:
            parent_ids = trace.get_current_span(parent).get_span_context()
            trace_id, random_id = parent_ids.trace_id, parent_ids.trace_flags.random_trace_id
        decision = provider.sampler.should_sample(parent, trace_id, name, kind, attributes)
        if decision.decision is Decision.DROP:
            flags = TraceFlags.RANDOM_TRACE_ID if random_id else TraceFlags.DEFAULT
            span_id = _ids.generate_span_id()
            return None, f"00-{trace_id:032x}-{span_id:016x}-{flags:02x}"
        if parent is _NO_PARENT:
            _ids.next_trace_id = trace_id
    span = tracer.start_span(name, context=parent, kind=kind, attributes=attributes)
    _ids.next_trace_id = None  # taken (or left by a tracer that made no span)
    if not span.is_recording():
        return None, traceparent_of(span)
    return span, traceparent_of(span)


def inject(carrier: MutableMapping[str, str], span: Span | None = None) -> None:
    """Put the W3C Trace Context of ``span`` (default: the current span) in ``carrier`` (e.g.
    ``Task.trace_context``); nothing when that span is not valid."""
    context = trace.set_span_in_context(span) if span is not None else None
    _PROPAGATOR.inject(carrier, context=context)


def traceparent_of(span: Span) -> str:
    """The W3C ``traceparent`` header value naming ``span``."""
    c = span.get_span_context()
    return f"00-{c.trace_id:032x}-{c.span_id:016x}-{int(c.trace_flags):02x}"


def trace_id_of(span: Span) -> str:
    """``span``'s trace id, 32 hex digits (empty when it is not sampled: nothing to link to)."""
    c = span.get_span_context()
    return f"{c.trace_id:032x}" if c.is_valid and c.trace_flags.sampled else ""


def current_trace_id() -> str:
    """The current span's trace id if it is sampled (a metric's exemplar), else empty."""
    return trace_id_of(trace.get_current_span())


def current_sampled() -> bool:
    """Whether the current span is sampled (what it starts is exported)."""
    return trace.get_current_span().get_span_context().trace_flags.sampled


def current_ids() -> tuple[str, str] | None:
    """The trace and span id (hex) of the current span, if there is a valid one."""
    c = trace.get_current_span().get_span_context()
    if not c.is_valid:
        return None
    return f"{c.trace_id:032x}", f"{c.span_id:016x}"


def activate(span: Span) -> Token[Context]:
    """Make ``span`` the current span of this task (its log lines and child spans join it);
    returns the token for ``deactivate``."""
    return otel_context.attach(trace.set_span_in_context(span))


def deactivate(token: Token[Context]) -> None:
    """Undo ``activate``."""
    otel_context.detach(token)


@contextmanager
def current(span: Span) -> Iterator[Span]:
    """``span`` as the current span inside the ``with`` block (not ended on exit)."""
    token = activate(span)
    try:
        yield span
    finally:
        deactivate(token)


def context_of(span: Span) -> Context:
    """A context whose current span is ``span`` (the parent of spans started in it)."""
    return trace.set_span_in_context(span)


def link_to(span: Span) -> Link:
    """A link to ``span`` (a batch's span links each request it served)."""
    return Link(span.get_span_context())


def links_to(contexts: Sequence[SpanContext]) -> list[Link]:
    """Links to each of ``contexts``."""
    return [Link(c) for c in contexts]


def publish_attributes(
    queue: str, task_id: str, extra: Mapping[str, str | int] | None = None
) -> dict[str, str | int]:
    """A producer span's attributes for publishing task ``task_id`` to RabbitMQ's ``queue``
    (messaging semantic conventions), plus ``extra``."""
    attributes: dict[str, str | int] = {
        MESSAGING_SYSTEM: "rabbitmq",
        MESSAGING_OPERATION_TYPE: "send",
        MESSAGING_OPERATION_NAME: "publish",
        MESSAGING_DESTINATION: queue,
        MESSAGING_MESSAGE_ID: task_id,
    }
    if extra:
        attributes.update(extra)
    return attributes


def fail(span: Span, message: str, error_type: str = "") -> None:
    """Mark ``span`` failed: its status ERROR with ``message``, ``error.type`` when given."""
    span.set_status(Status(StatusCode.ERROR, message))
    if error_type:
        span.set_attribute("error.type", error_type)
