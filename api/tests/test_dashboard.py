"""GET /metrics and the dashboard, on fakes of the registry and the brokers."""

import asyncio
import logging
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.catalog import ModelInfo
from api.config import Settings
from api.dashboard.monitor import Monitor, quantile
from api.exceptions import Overloaded, RegistryUnavailable
from api.main import create_app
from api.tests.test_routes import FakeCatalog, FakeDispatcher
from conveyor import logs
from conveyor.metrics import LATENCY_BUCKETS, GatewayMetrics
from conveyor.registry_api import ModelSummary
from proto import task_pb2


class NotingDispatcher(FakeDispatcher):
    """Notes the model version in the request's context, as the real dispatcher does."""

    full = False

    async def run(
        self, info: ModelInfo, payload: bytes, *, seconds: float, priority: int, request_id: str,
        max_retries: int | None = None,
    ) -> task_pb2.TaskResult:  # fmt: skip
        logs.note(info.name, info.version)
        if self.full:
            raise Overloaded("full", model=info.name, retry_after=1)
        return await super().run(
            info, payload, seconds=seconds, priority=priority, request_id=request_id
        )


@pytest.fixture
def client() -> Iterator[TestClient]:
    app = create_app(Settings())
    app.state.catalog = FakeCatalog()
    app.state.dispatcher = NotingDispatcher()
    yield TestClient(app)  # no lifespan: nothing connects


def _metrics(client: TestClient) -> GatewayMetrics:
    metrics: GatewayMetrics = client.app.state.metrics  # type: ignore[attr-defined]
    return metrics


def test_metrics_count_requests_by_model_version_endpoint_and_outcome(client: TestClient) -> None:
    for _ in range(3):
        assert client.post("/predict/echo", json={"data": "x"}).status_code == 200
    client.app.state.dispatcher.full = True  # type: ignore[attr-defined]
    assert client.post("/predict/echo", json={"data": "x"}).status_code == 429
    assert client.post("/predict/nope", json={"data": "x"}).status_code == 404
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    ok = 'conveyor_requests_total{endpoint="predict",model="echo",outcome="ok",version="1"} 3.0'
    assert ok in text
    assert 'outcome="rejected",version="1"} 1.0' in text
    assert 'conveyor_rejected_requests_total{model="echo",reason="queue_full",version="1"} 1.0' in (
        text
    )
    assert 'endpoint="predict",model="",outcome="client_error",version=""} 1.0' in text
    assert "conveyor_request_duration_seconds_bucket" in text
    assert "conveyor_inflight_requests 0.0" in text


def test_metrics_can_be_switched_off() -> None:
    app = create_app(Settings(metrics_enabled=False))
    app.state.catalog = FakeCatalog()
    app.state.dispatcher = NotingDispatcher()
    client = TestClient(app)
    assert client.post("/predict/echo", json={"data": "x"}).status_code == 200
    response = client.get("/metrics")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "metrics_disabled"


def test_dashboard_page_and_its_files_are_served(client: TestClient) -> None:
    page = client.get("/dashboard")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "/dashboard/static/app.js" in page.text
    script = client.get("/dashboard/static/app.js")
    assert script.status_code == 200 and "/dashboard/data" in script.text
    assert client.get("/dashboard/static/style.css").status_code == 200
    assert client.get("/dashboard/static/../main.py").status_code == 404


def test_dashboard_data_reports_each_model(client: TestClient) -> None:
    app = client.app
    monitor = Monitor(app.state.catalog, app.state.dispatcher, _metrics(client), 0.01)  # type: ignore[attr-defined]
    app.state.monitor = monitor  # type: ignore[attr-defined]
    asyncio.run(monitor.sample())
    for _ in range(4):
        client.post("/predict/echo", json={"data": "x"})
    asyncio.run(monitor.sample())
    data = client.get("/dashboard/data").json()
    (echo,) = data["models"]
    assert echo["name"] == "echo"
    assert echo["instances"] == 1
    assert echo["versions"] == [{"version": "1", "status": "alive", "instances": 1, "queued": 3}]
    assert echo["queued"] == 3 and echo["dead_letters"] == 1
    assert echo["requests"] == 4 and echo["rate"] > 0
    assert echo["p50_ms"] > 0 and echo["p99_ms"] >= echo["p50_ms"]
    assert echo["history"]["rate"][-1] > 0
    assert (
        _metrics(client).registry.get_sample_value(
            "conveyor_queued_tasks", {"model": "echo", "version": "1"}
        )
        == 3
    )


class AwayCatalog(FakeCatalog):
    """A catalog whose registry can be made unreachable."""

    away = False

    async def list(self) -> list[ModelSummary]:
        if self.away:
            raise RegistryUnavailable("registry unreachable: ConnectError")
        return await super().list()


def test_a_registry_outage_keeps_the_last_list_and_is_left_to_the_catalog_to_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    catalog = AwayCatalog()
    monitor = Monitor(catalog, NotingDispatcher(), GatewayMetrics(), 0.01)  # type: ignore[arg-type]
    caplog.set_level(logging.WARNING, logger="api.dashboard.monitor")

    async def samples() -> None:
        await monitor.sample()
        catalog.away = True
        for _ in range(5):
            await monitor.sample()

    asyncio.run(samples())
    # The real catalog logs the outage once and its end (test_catalog); the monitor, sampling
    # every 2 s, adds nothing.
    assert [r.getMessage() for r in caplog.records] == []
    assert monitor.data()["models"][0]["name"] == "echo"  # the last list was kept


def test_quantile_interpolates_within_a_bucket() -> None:
    buckets = [0.0] * (len(LATENCY_BUCKETS) + 1)
    assert quantile(0.5, buckets) is None
    i = LATENCY_BUCKETS.index(0.01)
    for j in range(i, len(buckets)):
        buckets[j] = 10.0  # ten requests between 5 and 10 ms
    assert quantile(0.5, buckets) == pytest.approx(0.0075)
    assert quantile(1.0, buckets) == pytest.approx(0.01)


def test_dashboard_data_reports_each_models_streams(client: TestClient) -> None:
    app = client.app
    metrics = _metrics(client)
    monitor = Monitor(app.state.catalog, app.state.dispatcher, metrics, 0.01)  # type: ignore[attr-defined]
    app.state.monitor = monitor  # type: ignore[attr-defined]
    asyncio.run(monitor.sample())
    series = metrics.stream_series("echo", "1")
    series.open.inc(2)
    series.chunks.inc(40)
    series.first_chunk.observe(0.02)
    series.cancelled.inc()
    asyncio.run(monitor.sample())
    (echo,) = client.get("/dashboard/data").json()["models"]
    assert echo["streams_open"] == 2 and echo["streams_cancelled"] == 1
    assert echo["chunk_rate"] > 0 and echo["history"]["chunk_rate"][-1] > 0
    assert 10 < echo["first_chunk_p50_ms"] <= 25
    assert echo["history"]["streams_open"][-1] == 2
