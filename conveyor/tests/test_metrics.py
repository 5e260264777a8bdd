"""The metric series on a real prometheus_client registry."""

import urllib.request

import pytest
from prometheus_client import CollectorRegistry

from conveyor.metrics import (
    GatewayMetrics,
    RegistryMetrics,
    WorkerMetrics,
    exposition,
    negotiated,
    new_registry,
    outcome_of,
    serve,
)
from proto import task_pb2


def test_outcomes_of_statuses() -> None:
    assert [outcome_of(s) for s in (200, 202, 404, 422, 429, 500, 503, 504)] == [
        "ok", "ok", "client_error", "client_error", "rejected", "error", "error", "timeout",
    ]  # fmt: skip


def test_gateway_counts_requests_latency_and_rejections() -> None:
    metrics = GatewayMetrics(CollectorRegistry())
    series = metrics.series("predict", "echo", "1")
    assert metrics.series("predict", "echo", "1") is series  # bound once, reused
    series.observe(200, 0.003)
    series.observe(200, 0.2)
    series.observe(429, 0.001)
    metrics.series("predict").observe(429, 0.0005, "gateway_full")
    value = metrics.registry.get_sample_value
    labels = {"model": "echo", "version": "1", "endpoint": "predict"}
    assert value("conveyor_requests_total", {**labels, "outcome": "ok"}) == 2
    assert value("conveyor_requests_total", {**labels, "outcome": "rejected"}) == 1
    assert value("conveyor_request_duration_seconds_count", labels) == 3
    assert value("conveyor_request_duration_seconds_bucket", {**labels, "le": "0.005"}) == 2
    reason = {"model": "echo", "version": "1", "reason": "queue_full"}
    assert value("conveyor_rejected_requests_total", reason) == 1
    gateway = {"model": "", "version": "", "reason": "gateway_full"}
    assert value("conveyor_rejected_requests_total", gateway) == 1


def test_inflight_is_read_at_scrape_time() -> None:
    metrics = GatewayMetrics(CollectorRegistry())
    inflight = [0]
    metrics.track_inflight(lambda: inflight[0])
    inflight[0] = 7
    assert metrics.registry.get_sample_value("conveyor_inflight_requests") == 7


def test_queue_gauges_are_replaced_not_accumulated() -> None:
    metrics = GatewayMetrics(CollectorRegistry())
    metrics.set_queues([("a", "1", 4), ("a", "2", 1)], [("a", 2)])
    metrics.set_queues([("a", "2", 3)], [("a", 0)])
    value = metrics.registry.get_sample_value
    assert value("conveyor_queued_tasks", {"model": "a", "version": "1"}) is None
    assert value("conveyor_queued_tasks", {"model": "a", "version": "2"}) == 3
    assert value("conveyor_dead_letter_tasks", {"model": "a"}) == 0


def test_registry_live_instances() -> None:
    metrics = RegistryMetrics(CollectorRegistry())
    metrics.set_instances([("a", "1", 2), ("b", "3", 0)])
    value = metrics.registry.get_sample_value
    assert value("conveyor_live_instances", {"model": "a", "version": "1"}) == 2
    assert value("conveyor_live_instances", {"model": "b", "version": "3"}) == 0


def _task(created: int) -> task_pb2.Task:
    return task_pb2.Task(task_id="t", model="m", version="1", created_unix_ms=created)


def test_worker_counts_outcomes_times_and_batches() -> None:
    metrics = WorkerMetrics("m", "1", CollectorRegistry())
    ok = task_pb2.TaskResult(response=b"x", started_unix_ms=1_100, finished_unix_ms=1_150)
    failed = task_pb2.TaskResult(started_unix_ms=1_100, finished_unix_ms=1_150)
    failed.error.code = task_pb2.TaskError.MODEL_ERROR
    expired = task_pb2.TaskResult(finished_unix_ms=1_150)
    expired.error.code = task_pb2.TaskError.DEADLINE_EXCEEDED
    metrics.observe([_task(1_000), _task(1_000), _task(500)], [ok, failed, expired])
    metrics.dead_lettered.inc()
    value = metrics.registry.get_sample_value
    labels = {"model": "m", "version": "1"}
    assert value("conveyor_tasks_total", {**labels, "outcome": "ok"}) == 1
    assert value("conveyor_tasks_total", {**labels, "outcome": "model_error"}) == 1
    assert value("conveyor_tasks_total", {**labels, "outcome": "deadline_exceeded"}) == 1
    assert value("conveyor_tasks_expired_total", labels) == 1
    assert value("conveyor_tasks_dead_lettered_total", labels) == 1
    assert value("conveyor_task_queue_seconds_count", labels) == 2
    assert value("conveyor_task_queue_seconds_sum", labels) == 0.2
    assert value("conveyor_task_model_seconds_sum", labels) == 0.1
    assert value("conveyor_batch_size_count", labels) == 1
    assert value("conveyor_batch_size_sum", labels) == 2  # the expired one never ran


def test_exposition_has_conventional_names_and_process_series() -> None:
    metrics = GatewayMetrics(new_registry())
    metrics.series("predict", "echo", "1").observe(200, 0.01)
    text = exposition(metrics.registry).decode()
    assert "# TYPE conveyor_requests_total counter" in text
    assert "# TYPE conveyor_request_duration_seconds histogram" in text
    assert "process_cpu_seconds_total" in text


def test_a_worker_serves_its_registry_on_a_port() -> None:
    metrics = WorkerMetrics("m", "1", CollectorRegistry())
    metrics.dead_lettered.inc()
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert serve(metrics.registry, port, "127.0.0.1")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        body = response.read().decode()
    assert 'conveyor_tasks_dead_lettered_total{model="m",version="1"} 1.0' in body
    assert not serve(metrics.registry, port, "127.0.0.1")  # taken: reported, not raised


def test_request_series_buckets_follow_prometheus_le() -> None:
    metrics = GatewayMetrics(CollectorRegistry())
    series = metrics.series("predict", "m", "1")
    for seconds in (0.001, 0.0011, 0.3, 1000.0):  # on a bound, just over, mid, past the last
        series.observe(200, seconds)
    value = metrics.registry.get_sample_value
    labels = {"model": "m", "version": "1", "endpoint": "predict"}
    assert value("conveyor_request_duration_seconds_bucket", {**labels, "le": "0.001"}) == 1
    assert value("conveyor_request_duration_seconds_bucket", {**labels, "le": "0.0025"}) == 2
    assert value("conveyor_request_duration_seconds_bucket", {**labels, "le": "0.5"}) == 3
    assert value("conveyor_request_duration_seconds_bucket", {**labels, "le": "300.0"}) == 3
    assert value("conveyor_request_duration_seconds_bucket", {**labels, "le": "+Inf"}) == 4
    assert value("conveyor_request_duration_seconds_sum", labels) == pytest.approx(1000.3021)
    assert series.count == 4
    assert metrics.all_series() == [series]


def test_worker_series_show_every_outcome_and_a_traced_tasks_exemplar() -> None:
    metrics = WorkerMetrics("m", "1", CollectorRegistry())
    ok = task_pb2.TaskResult(response=b"x", started_unix_ms=1_100, finished_unix_ms=1_103)
    metrics.observe([_task(1_000)], [ok], ["0af7651916cd43dd8448eb211c80319c"])
    metrics.tasks_per_message.observe(3)
    value = metrics.registry.get_sample_value
    labels = {"model": "m", "version": "1"}
    # Every outcome is a series from the start (a rate over it needs no first failure).
    assert value("conveyor_tasks_total", {**labels, "outcome": "cancelled"}) == 0
    assert value("conveyor_task_model_seconds_bucket", {**labels, "le": "0.001"}) == 0
    assert value("conveyor_task_model_seconds_bucket", {**labels, "le": "0.005"}) == 1
    assert value("conveyor_tasks_per_message_bucket", {**labels, "le": "2.0"}) == 0
    assert value("conveyor_tasks_per_message_bucket", {**labels, "le": "4.0"}) == 1
    body, _ = negotiated(metrics.registry, "application/openmetrics-text")
    queue = [
        line
        for line in body.decode().splitlines()
        if line.startswith('conveyor_task_queue_seconds_bucket{le="0.1"')
    ]
    assert len(queue) == 1 and 'trace_id="0af7651916cd43dd8448eb211c80319c"' in queue[0]
