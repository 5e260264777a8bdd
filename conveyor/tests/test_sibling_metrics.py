"""Sibling processes' series merged into one scrape: real registries, real Unix sockets."""

from __future__ import annotations

import asyncio

import pytest
import uvloop
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families as parse_text

from conveyor.metrics import GATEWAY_SHARED_GAUGES, GatewayMetrics, new_registry
from conveyor.sibling_metrics import Siblings, address, group_token, merge, openmetrics_text


def _gateway(ok: int, slow: int, inflight: float, queued: int) -> GatewayMetrics:
    metrics = GatewayMetrics(new_registry())
    series = metrics.series("predict", "echo", "1")
    for _ in range(ok):
        series.observe(200, 0.002)
    for _ in range(slow):
        series.observe(200, 0.3, trace_id=f"{slow:032x}")
    metrics.track_inflight(lambda: inflight)
    metrics.set_queues([("echo", "1", queued)], [("echo", 0)])
    metrics.cancelled.labels("echo", "1").inc(slow)
    return metrics


def _samples(metrics: list[Metric]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for m in metrics for s in m.samples}


def test_counters_and_histograms_sum_shared_gauges_take_the_largest_runtime_kept_apart() -> None:
    a = _gateway(ok=3, slow=1, inflight=2, queued=7)
    b = _gateway(ok=5, slow=2, inflight=1, queued=9)
    merged = merge(
        [(1, openmetrics_text(a.registry).decode()), (2, openmetrics_text(b.registry).decode())],
        GATEWAY_SHARED_GAUGES,
    )
    values = _samples(merged)
    series = (("endpoint", "predict"), ("model", "echo"), ("version", "1"))
    ok = (*series[:2], ("outcome", "ok"), series[2])
    assert values[("conveyor_requests_total", ok)] == 11
    assert values[("conveyor_request_duration_seconds_count", series)] == 11
    le = (("endpoint", "predict"), ("le", "0.0025"), ("model", "echo"), ("version", "1"))
    assert values[("conveyor_request_duration_seconds_bucket", le)] == 8
    assert values[("conveyor_inflight_requests", ())] == 3  # held by each: summed
    assert values[("conveyor_queued_tasks", (("model", "echo"), ("version", "1")))] == 9
    assert values[("conveyor_tasks_cancelled_total", (("model", "echo"), ("version", "1")))] == 3
    created = [k for k in values if k[0] == "conveyor_tasks_cancelled_created"]
    assert len(created) == 1  # one series, its earliest creation
    memory = {k: v for k, v in values.items() if k[0] == "process_resident_memory_bytes"}
    assert set(memory) == {
        ("process_resident_memory_bytes", (("process", "1"),)),
        ("process_resident_memory_bytes", (("process", "2"),)),
    }
    # A slow bucket's exemplar survives the merge (some process's trace).
    exemplars = [
        s.exemplar
        for m in merged
        for s in m.samples
        if s.name == "conveyor_request_duration_seconds_bucket" and s.exemplar is not None
    ]
    assert exemplars
    assert {e.labels["trace_id"] for e in exemplars} <= {f"{1:032x}", f"{2:032x}"}


def test_a_series_only_one_process_has_is_kept() -> None:
    one, two = CollectorRegistry(), CollectorRegistry()
    Counter("jobs", "Jobs.", ["kind"], registry=one).labels("a").inc(2)
    Counter("jobs", "Jobs.", ["kind"], registry=two).labels("b").inc(5)
    Gauge("depth", "Depth.", registry=two).set(4)
    values = _samples(
        merge([(1, openmetrics_text(one).decode()), (2, openmetrics_text(two).decode())])
    )
    assert values[("jobs_total", (("kind", "a"),))] == 2
    assert values[("jobs_total", (("kind", "b"),))] == 5
    assert values[("depth", ())] == 4


@pytest.mark.asyncio
async def test_siblings_answer_a_scrape_for_all_in_both_formats() -> None:
    group = group_token()
    gateways = [_gateway(ok=n, slow=0, inflight=0, queued=1) for n in (1, 2, 4)]
    siblings = [
        Siblings(group, place, 3, g.registry, GATEWAY_SHARED_GAUGES, timeout=2.0)
        for place, g in enumerate(gateways, start=1)
    ]
    for s in siblings[:2]:  # place 3 is not there (dead, being started again)
        await s.start()
    try:
        body, content_type = await siblings[1].exposition("application/openmetrics-text")
        assert content_type.startswith("application/openmetrics-text")
        assert body.endswith(b"# EOF\n")
        text, plain = await siblings[0].exposition(None)
        assert plain.startswith("text/plain")
        requests = {
            s.labels["outcome"]: s.value
            for family in parse_text(text.decode())
            for s in family.samples
            if s.name == "conveyor_requests_total"
        }
        assert requests == {"ok": 3}  # places 1 and 2; 3 left out
        await siblings[2].start()
        body, _ = await siblings[0].exposition(None)
        ok = b'conveyor_requests_total{endpoint="predict",model="echo",outcome="ok",version="1"}'
        assert ok + b" 7.0" in body
    finally:
        for s in siblings:
            await s.stop()


@pytest.mark.asyncio
async def test_a_sibling_that_does_not_answer_is_left_out_in_time() -> None:
    group = group_token()
    me = Siblings(group, 1, 2, _gateway(1, 0, 0, 0).registry, timeout=0.3)

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)
        writer.close()

    mute = await asyncio.start_unix_server(hang, path=address(group, 2))
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        body, _ = await me.exposition(None)
        assert loop.time() - started < 2
        assert b'outcome="ok",version="1"} 1.0' in body
    finally:
        mute.close()


def test_siblings_on_uvloop() -> None:
    """The services run uvloop: abstract sockets must work on it too."""

    async def scrape() -> bytes:
        group = group_token()
        first = Siblings(group, 1, 2, _gateway(1, 0, 0, 0).registry)
        second = Siblings(group, 2, 2, _gateway(2, 0, 0, 0).registry)
        await first.start()
        await second.start()
        try:
            body, _ = await first.exposition(None)
            return body
        finally:
            await first.stop()
            await second.stop()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        body = runner.run(scrape())
    assert b'outcome="ok",version="1"} 3.0' in body
