"""The trace store: grouping, summaries, filters, order, eviction of whole traces."""

import pytest

from traceview.spans import Span, spans_of
from traceview.store import TraceStore
from traceview.tests.otlp_data import export, new_span_id, new_trace_id, span


def spans(service: str, *otlp_spans: object) -> list[Span]:
    decoded, rejected = spans_of(export(service, list(otlp_spans)))  # type: ignore[arg-type]
    assert rejected == 0
    return decoded


def a_trace(service: str, size: int, start_ms: float = 0) -> tuple[str, list[Span]]:
    """A trace of ``size`` spans: a root and its children."""
    trace_id, root_id = new_trace_id(), new_span_id()
    root = span(trace_id, "root", span_id=root_id, start_ms=start_ms, duration_ms=10)
    children = [
        span(trace_id, f"child{i}", parent=root_id, start_ms=start_ms + i) for i in range(size - 1)
    ]
    return trace_id.hex(), spans(service, root, *children)


def test_groups_by_trace_and_summarises() -> None:
    store = TraceStore(100)
    trace_id, root_id = new_trace_id(), new_span_id()
    child = span(trace_id, "publish", parent=root_id, start_ms=2, duration_ms=3)
    store.add(spans("worker", child))
    store.add(spans("gateway", span(trace_id, "POST /predict", span_id=root_id, duration_ms=10)))
    [summary] = store.summaries()
    assert summary == {
        "trace_id": trace_id.hex(),
        "root_name": "POST /predict",
        "root_service": "gateway",
        "services": ["gateway", "worker"],
        "start_unix_nano": summary["start_unix_nano"],
        "duration_ms": 10.0,
        "span_count": 2,
        "error": False,
    }
    trace = store.trace(trace_id.hex().upper())
    assert trace is not None
    assert [s["name"] for s in trace.sorted_spans()] == ["POST /predict", "publish"]
    assert store.services() == ["gateway", "worker"]


def test_filters_and_orders_newest_first() -> None:
    store = TraceStore(100)
    old, old_spans = a_trace("gateway", 2, start_ms=0)
    new, new_spans = a_trace("registry", 2, start_ms=1000)
    store.add(new_spans)
    store.add(old_spans)
    assert [t["trace_id"] for t in store.summaries()] == [new, old]
    assert [t["trace_id"] for t in store.summaries(limit=1)] == [new]
    assert [t["trace_id"] for t in store.summaries(service="gateway")] == [old]
    assert store.summaries(service="nobody") == []
    assert [t["trace_id"] for t in store.summaries(min_duration_ms=10)] == [new, old]
    assert store.summaries(min_duration_ms=10.5) == []


def test_evicts_the_oldest_traces_whole() -> None:
    store = TraceStore(10)
    first, first_spans = a_trace("a", 4)
    second, second_spans = a_trace("b", 4)
    third, third_spans = a_trace("c", 4)
    store.add(first_spans)
    store.add(second_spans)
    assert store.span_count == 8
    store.add(third_spans)  # 12 > 10: the first trace goes, all of it
    assert store.trace(first) is None
    assert store.trace(second) is not None and store.trace(third) is not None
    assert store.span_count == 8 and len(store) == 2
    assert store.services() == ["b", "c"]


def test_one_trace_past_the_bound_keeps_its_first_spans() -> None:
    store = TraceStore(3)
    _, old_spans = a_trace("a", 2)
    big, big_spans = a_trace("b", 5)
    store.add(old_spans)
    assert store.add(big_spans) == 2
    trace = store.trace(big)
    assert trace is not None and len(trace.spans) == 3
    assert store.span_count == 3 and len(store) == 1


def test_a_span_sent_twice_is_held_once() -> None:
    store = TraceStore(10)
    trace_id, decoded = a_trace("a", 3)
    store.add(decoded)
    store.add(decoded)
    assert store.span_count == 3
    summary = store.summaries()[0]
    assert summary["span_count"] == 3 and summary["trace_id"] == trace_id


def test_clear_and_bad_bound() -> None:
    store = TraceStore(10)
    store.add(a_trace("a", 2)[1])
    store.clear()
    assert len(store) == 0 and store.span_count == 0 and store.services() == []
    with pytest.raises(ValueError, match="max_spans"):
        TraceStore(0)
