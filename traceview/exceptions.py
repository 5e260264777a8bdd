"""Exceptions of traceview; only ``traceview.errors`` turns them into HTTP answers.

TraceviewError (a conveyor.errors.ConveyorError)
├── TraceNotFound        -- no trace of that id is held                                  (404)
├── InvalidExport        -- an OTLP body that does not decode                           (400)
└── UnsupportedEncoding  -- a content type or content encoding OTLP/HTTP does not use   (415)
"""

from conveyor.errors import ConveyorError


class TraceviewError(ConveyorError):
    """Base class of every traceview error."""


class TraceNotFound(TraceviewError):
    """No trace of that id is in the store (never received, evicted, or cleared)."""

    code = "trace_not_found"


class InvalidExport(TraceviewError):
    """The body of an export is not an ``ExportTraceServiceRequest`` in its declared encoding."""

    code = "invalid_otlp"


class UnsupportedEncoding(TraceviewError):
    """A ``Content-Type`` other than OTLP's two, or a ``Content-Encoding`` other than gzip."""

    code = "unsupported_media_type"
