"""The container test: the stack of built images on a private network, driven over HTTP.

Skipped when no container engine runs here, unless ``CI`` or ``CONVEYOR_REQUIRE_CONTAINERS`` is
set, where a missing engine fails the test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.container.engine_stack import Stack
from tools.oci.engine import detect_engine
from tools.stack.services import SERVICES
from tools.stack.waiting import wait_until

LIVENESS_MARGIN_SECONDS = 90  # registry liveness window (5 s) + heartbeats on a loaded machine


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    engine = detect_engine()
    if engine is None:
        message = "no container engine: `docker info` fails and podman is not installed"
        if os.environ.get("CI") or os.environ.get("CONVEYOR_REQUIRE_CONTAINERS"):
            pytest.fail(message + " (required here: CI or CONVEYOR_REQUIRE_CONTAINERS is set)")
        pytest.skip(message + " (install podman with tools/podman/setup)")
    paths = os.environ["CONVEYOR_IMAGE_TARBALLS"].split()
    tarballs = [Path(p) for p in paths if p.endswith(".tar")]
    assert len(tarballs) == len(SERVICES), f"expected one image tarball per service: {paths}"
    running = Stack(engine)
    running.load(tarballs)
    try:
        running.up()
        yield running
    except Exception:
        print(running.logs())
        raise
    finally:
        leftovers = running.down()
        assert leftovers == [], f"left behind: {leftovers}"


def _predict(client: httpx.Client, model: str, body: dict[str, object]) -> httpx.Response:
    return client.post(f"/predict/{model}", json=body, params={"timeout": 30})


def test_predict_every_model_then_model_a_goes_away_and_comes_back(stack: Stack) -> None:
    with httpx.Client(base_url=stack.api_url(), timeout=60) as client:
        wait_until(
            lambda: _predict(client, "model_a", {"data": "example"}).status_code == 200,
            120,
            what="model_a served",
        )
        reply_a = _predict(client, "model_a", {"data": "example"})
        assert reply_a.status_code == 200, reply_a.text
        assert "example" in reply_a.text
        reply_b = _predict(client, "model_b", {"features": [5.1, 3.5, 1.4, 0.2]})
        assert reply_b.status_code == 200, reply_b.text
        prompt = {"prompt": "The keeper", "max_tokens": 8, "seed": 1}
        wait_until(
            lambda: _predict(client, "model_c", prompt).status_code == 200,
            120,
            what="model_c served",
        )
        assert len(_predict(client, "model_c", prompt).json()["text"].split()) == 8

        stack.engine.run("stop", "-t", "10", stack.container("model_a"))
        wait_until(
            lambda: _predict(client, "model_a", {"data": "x"}).status_code == 503,
            LIVENESS_MARGIN_SECONDS,
            what="503 for model_a after it stopped",
        )
        assert _predict(client, "model_b", {"features": [6.0, 2.9, 4.5, 1.5]}).status_code == 200

        stack.engine.run("start", stack.container("model_a"))
        wait_until(
            lambda: _predict(client, "model_a", {"data": "again"}).status_code == 200,
            LIVENESS_MARGIN_SECONDS,
            what="model_a served again",
        )


def test_brokers_are_reached_on_the_network_not_published(stack: Stack) -> None:
    """As in docker-compose.yml: only the gateway (HTTP and gRPC) and the management UI reach
    the host, so the stack runs beside brokers already listening on the host's 5672 and 6379."""
    assert set(stack.published("rabbitmq")) == {15672}
    assert stack.published("redis") == {}
    assert set(stack.published("api")) == {8000, 8081}


def test_the_gateway_image_serves_grpc(stack: Stack) -> None:
    """The image carries grpcio and serves the health service on its published gRPC port."""
    target = f"127.0.0.1:{stack.published('api')[8081]}"

    def serving() -> bool:
        with grpc.insecure_channel(target) as channel:
            try:
                answer = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=5
                )
            except grpc.RpcError:
                return False
        return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)

    wait_until(serving, 120, what="the gateway's gRPC health SERVING")
