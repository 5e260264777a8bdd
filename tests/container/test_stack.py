"""The container test: the stack of built images on a private network, driven over HTTP, and
a user's image built FROM the worker base image serving beside it.

Skipped when no container engine runs here, unless ``CI`` or ``CONVEYOR_REQUIRE_CONTAINERS`` is
set, where a missing engine fails the test.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.container.engine_stack import Stack, image_tag
from tools.oci.engine import detect_engine
from tools.stack.services import COMPOSE_ENDPOINTS, SERVICES
from tools.stack.waiting import wait_until
from tools.wheel import locked_wheels, venv

LIVENESS_MARGIN_SECONDS = 90  # registry liveness window (5 s) + heartbeats on a loaded machine
WORKER_BASE = "conveyor/worker:dev"
ONNX_WORKER = "conveyor/onnx:dev"
EXAMPLE = next(
    Path(p).parent
    for p in os.environ["CONVEYOR_WORKER_EXAMPLE"].split()
    if p.endswith("Dockerfile")
)
"""examples/worker-image: a Dockerfile FROM the worker base image, a model and its .proto."""
EXAMPLE_PACKAGES = ["grpcio-tools", "python-dateutil"]
"""What the example's Dockerfile pip-installs."""


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
    tags = sorted(image_tag(tarball) for tarball in tarballs)
    expected = sorted([service.image for service in SERVICES] + [WORKER_BASE, ONNX_WORKER])
    assert tags == expected, f"expected an image per service, the worker base and ONNX: {paths}"
    running = Stack(engine)
    running.load([t for t in tarballs if image_tag(t) != ONNX_WORKER])  # no test runs it here
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


def _offline_pip(root: Path) -> list[str]:
    """Volumes of a build whose ``pip install``s need no index: the locked wheels of
    ``EXAMPLE_PACKAGES`` (and what they require) at /wheels, and a pip.conf sending pip there."""
    site = Path(str(importlib.metadata.distribution("python-dateutil").locate_file("")))
    wheels = root / "wheels"
    wheels.mkdir()
    for info in venv.closure(site, EXAMPLE_PACKAGES):
        locked_wheels.repack_one(site, info, wheels)
    conf = root / "pip.conf"
    conf.write_text("[global]\nno-index = true\nfind-links = /wheels\n")
    return ["--volume", f"{wheels}:/wheels:ro", "--volume", f"{conf}:/etc/pip.conf:ro"]


def test_an_image_built_from_the_worker_base_serves_beside_the_stack(
    stack: Stack, tmp_path: Path
) -> None:
    """examples/worker-image, built as docs/sdk.md says (without the network: its pip installs
    read the locked wheels), runs on the stack's network and the gateway serves its model."""
    if stack.engine.name != "podman":
        pytest.skip("the offline build mounts the wheels into its RUN steps: podman build only")
    # The base's dependencies (//worker_base's locked packages) satisfy the wheel's requirements.
    checked = stack.engine.run("run", "--rm", WORKER_BASE, "pip", "check", check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    context = tmp_path / "context"
    shutil.copytree(EXAMPLE, context)  # the runfiles are symlinks; the build context holds files
    tag, container = f"{stack.prefix}-example", stack.container("example")
    build = ["build", "--network=none", "--pull=never", "--layers=false", "--format=docker"]
    built = stack.engine.run(*build, *_offline_pip(tmp_path), "--tag", tag, str(context))
    assert built.returncode == 0, built.stdout + built.stderr
    run = ["run", "--detach", "--name", container, "--network", stack.network]
    run += ["--env", f"AMQP_URL={COMPOSE_ENDPOINTS.amqp_url}"]
    run += ["--env", f"REDIS_URL={COMPOSE_ENDPOINTS.redis_url}"]
    run += ["--env", f"REGISTRY_URL={COMPOSE_ENDPOINTS.registry_url}"]
    try:
        stack.engine.run(*run, tag)
        with httpx.Client(base_url=stack.api_url(), timeout=60) as client:
            request: dict[str, object] = {"text": "3 March 2024, 5pm"}
            wait_until(
                lambda: _predict(client, "my_model", request).status_code == 200,
                120,
                what="my_model served",
            )
            reply = _predict(client, "my_model", request)
            assert reply.json() == {"iso": "2024-03-03T17:00:00", "weekday": "Sunday"}
            refused = _predict(client, "my_model", {"text": "no date here"})
            assert refused.status_code == 422, refused.text
    except Exception:
        print(stack.engine.run("logs", "--tail", "30", container, check=False).stderr)
        raise
    finally:
        stack.engine.run("rm", "--force", "--time", "5", container, check=False)
        stack.engine.run("rmi", "--force", tag, check=False)
