"""The bounded in-memory trace store: spans grouped by trace id, oldest traces evicted whole.

``TraceStore`` holds at most ``max_spans`` spans. Traces are kept in the order their first span
arrived; when an export would go past the bound, the oldest traces are dropped whole until it
fits. A trace that alone would hold more than ``max_spans`` keeps its first ``max_spans`` spans
and the rest are rejected (the export's ``partial_success`` says how many). A span id received
twice in one trace replaces the earlier span. The store lives in one event loop (the HTTP and
gRPC front ends share it) and needs no lock.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from traceview.spans import Span

__all__ = ["Trace", "TraceStore"]


@dataclass
class Trace:
    """The spans of one trace received so far, by span id."""

    trace_id: str
    spans: dict[str, Span] = field(default_factory=dict)
    _summary: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    def add(self, span: Span) -> None:
        """Add (or replace) one span."""
        self.spans[span.span_id] = span
        self._summary = None

    @property
    def start_unix_nano(self) -> int:
        """The earliest start among the spans."""
        return min(span.start_unix_nano for span in self.spans.values())

    def root(self) -> Span:
        """The span without a parent here (a root, or one whose parent never arrived); the
        earliest if several."""
        orphans = [s for s in self.spans.values() if s.parent_span_id not in self.spans]
        return min(orphans or self.spans.values(), key=lambda s: (s.start_unix_nano, s.span_id))

    def summary(self) -> dict[str, Any]:
        """The trace's line in ``GET /api/traces``."""
        if self._summary is None:
            spans = self.spans.values()
            start = min(s.start_unix_nano for s in spans)
            end = max(s.end_unix_nano for s in spans)
            root = self.root()
            self._summary = {
                "trace_id": self.trace_id,
                "root_name": root.name,
                "root_service": root.service,
                "services": sorted({s.service for s in spans}),
                "start_unix_nano": start,
                "duration_ms": max(0, end - start) / 1e6,
                "span_count": len(self.spans),
                "error": any(s.error for s in spans),
            }
        return self._summary

    def sorted_spans(self) -> list[dict[str, Any]]:
        """The spans' JSON forms by start time (then span id, so the order is stable)."""
        ordered = sorted(self.spans.values(), key=lambda s: (s.start_unix_nano, s.span_id))
        return [span.json for span in ordered]


class TraceStore:
    """At most ``max_spans`` spans, grouped by trace; the oldest traces go first, whole."""

    def __init__(self, max_spans: int) -> None:
        if max_spans < 1:
            raise ValueError(f"max_spans must be at least 1, not {max_spans}")
        self.max_spans = max_spans
        self._traces: OrderedDict[str, Trace] = OrderedDict()
        self._span_count = 0

    @property
    def span_count(self) -> int:
        """Spans held now."""
        return self._span_count

    def __len__(self) -> int:
        """Traces held now."""
        return len(self._traces)

    def add(self, spans: Iterable[Span]) -> int:
        """Store ``spans``; return how many were rejected (a trace past ``max_spans``)."""
        rejected = 0
        for span in spans:
            trace = self._traces.get(span.trace_id)
            if trace is None:
                trace = self._traces[span.trace_id] = Trace(span.trace_id)
            replaces = span.span_id in trace.spans
            if not replaces and len(trace.spans) >= self.max_spans:
                rejected += 1
                continue
            if not replaces:
                self._span_count += 1
                self._evict(keep=span.trace_id)
            trace.add(span)
        return rejected

    def _evict(self, keep: str) -> None:
        while self._span_count > self.max_spans:
            oldest = next(iter(self._traces))
            if oldest == keep:  # the newest trace is the only one left: it is within bounds
                self._traces.move_to_end(keep)
                continue
            self._span_count -= len(self._traces.pop(oldest).spans)

    def services(self) -> list[str]:
        """Every service that sent a span still held, sorted."""
        return sorted({span.service for t in self._traces.values() for span in t.spans.values()})

    def summaries(
        self, *, service: str | None = None, limit: int = 20, min_duration_ms: float = 0.0
    ) -> list[dict[str, Any]]:
        """Up to ``limit`` trace summaries, newest start first, of the traces ``service`` has a
        span in (any, when None) that last at least ``min_duration_ms``."""
        chosen = []
        for trace in self._traces.values():
            summary = trace.summary()
            if service and service not in summary["services"]:
                continue
            if summary["duration_ms"] < min_duration_ms:
                continue
            chosen.append(summary)
        chosen.sort(key=lambda s: (s["start_unix_nano"], s["trace_id"]), reverse=True)
        return chosen[:limit]

    def trace(self, trace_id: str) -> Trace | None:
        """The trace of that id (lowercase hex), or None."""
        return self._traces.get(trace_id.lower())

    def clear(self) -> None:
        """Forget every trace."""
        self._traces.clear()
        self._span_count = 0
