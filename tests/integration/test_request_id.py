"""One request followed across processes: its X-Request-ID is in the gateway's and the worker's
JSON log lines; and every service answers GET /metrics (real processes, real brokers)."""

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.stack import Service, Stack, free_port, wait_until


class Traced(Stack):
    """A stack logging at debug level, with one model_a worker serving its metrics."""

    model: str
    worker: Service
    metrics_port: int


@pytest.fixture(scope="module")
def stack() -> Iterator[Traced]:
    stack = Traced(LOG_LEVEL="debug", LOG_FORMAT="json", DASHBOARD_SAMPLE_SECONDS="0.5")
    try:
        stack.model = stack.model_name("model_a")
        stack.metrics_port = free_port()
        stack.worker = stack.start_worker(
            "models.model_a", stack.model, LOG_LEVEL="debug", METRICS_PORT=str(stack.metrics_port)
        )
        yield stack
    finally:
        stack.close()


def _lines(service: Service) -> list[dict[str, Any]]:
    """The service's JSON log lines (anything else it printed is skipped)."""
    lines = []
    for raw in service.log().splitlines():
        if raw.startswith("{"):
            lines.append(json.loads(raw))
    return lines


def test_the_request_id_is_in_the_gateway_and_worker_logs(stack: Traced) -> None:
    request_id = "trace-me-42"
    response = stack.http.post(
        f"/predict/{stack.model}", json={"data": "follow"}, headers={"X-Request-ID": request_id}
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"] == request_id

    def logged(service: Service) -> list[dict[str, Any]]:
        return [line for line in _lines(service) if line.get("request_id") == request_id]

    gateway = wait_until(lambda: logged(stack.gateway), 10.0, what="gateway line")
    worker = wait_until(lambda: logged(stack.worker), 10.0, what="worker line")
    assert gateway[0]["service"] == "api"
    assert gateway[0]["model"] == stack.model and gateway[0]["version"] == "1"
    assert worker[0]["service"] == stack.model
    assert worker[0]["task_id"] == gateway[0]["task_id"]  # the same task, across processes
    assert request_id in stack.worker.log()  # what an operator's grep finds
    every = _lines(stack.gateway) + _lines(stack.registry) + _lines(stack.worker)
    assert every and all({"time", "level", "service", "message"} <= set(e) for e in every)


def test_every_service_serves_metrics(stack: Traced) -> None:
    stack.http.post(f"/predict/{stack.model}", json={"data": "count me"})
    labels = f'model="{stack.model}"'

    def gateway() -> str | None:
        text = stack.http.get("/metrics").text
        queued = f'conveyor_queued_tasks{{{labels},version="1"}}' in text
        return text if queued else None

    text = wait_until(gateway, 10.0, what="queue gauge")
    assert f'conveyor_requests_total{{endpoint="predict",{labels},outcome="ok"' in text
    registry = httpx.get(f"{stack.registry_url}/metrics", timeout=10.0).text
    assert f'conveyor_live_instances{{{labels},version="1"}} 1.0' in registry
    worker = httpx.get(f"http://127.0.0.1:{stack.metrics_port}/metrics", timeout=10.0).text
    assert f'conveyor_tasks_total{{{labels},outcome="ok",version="1"}}' in worker
    assert f'conveyor_task_model_seconds_count{{{labels},version="1"}}' in worker
