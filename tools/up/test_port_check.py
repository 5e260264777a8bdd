"""A second //:up on a busy machine exits at once, naming the taken port; workers get a metrics
port each."""

import dataclasses
import socket
import subprocess
import sys

from tools.stack.ports import free_port
from tools.stack.services import PROCESSES, Endpoints, by_name
from tools.up.__main__ import worker_metrics_ports


def test_exits_at_once_naming_a_taken_port() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "tools.up", "--api-port", str(taken),
             "--registry-port", str(free_port())],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert f"port {taken} is taken (needed by --api-port)" in result.stderr
    assert "registry" not in result.stderr.split("taken")[0], "nothing was started first"


def test_each_worker_gets_its_own_free_metrics_port() -> None:
    ports = worker_metrics_ports({8000, 8001})
    assert set(ports) == {"model_a", "model_b", "model_c"}
    assert len(set(ports.values())) == len(ports)
    assert not set(ports.values()) & {8000, 8001}
    endpoints = Endpoints.local("amqp://x", "redis://x", 8000, 8001, ports)
    env = by_name("model_b").environment(endpoints)
    assert env["METRICS_PORT"] == str(ports["model_b"])
    assert env["METRICS_HOST"] == "127.0.0.1"
    assert "METRICS_PORT" not in by_name("api").environment(endpoints)


def test_the_gateways_grpc_is_off_in_local_stacks_unless_given_a_port() -> None:
    api = by_name("api")
    assert api.environment(Endpoints.local("amqp://x", "redis://x", 8000, 8001))["GRPC_PORT"] == "0"
    given = Endpoints.local("amqp://x", "redis://x", 8000, 8001, grpc_port=9123)
    assert api.environment(given)["GRPC_PORT"] == "9123"
    assert given.grpc_target == "127.0.0.1:9123"
    assert "GRPC_PORT" not in by_name("registry").environment(given)


def test_traces_mode_points_every_service_at_traceview() -> None:
    plain = Endpoints.local("amqp://x", "redis://x", 8000, 8001)
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in by_name("api").environment(plain)
    traced = dataclasses.replace(
        plain, traces_endpoint="http://127.0.0.1:4999", traceview_port=4999, traceview_grpc_port=0
    )
    for name in ("api", "registry", "model_a", "model_b", "model_c"):
        assert by_name(name).environment(traced)["OTEL_EXPORTER_OTLP_ENDPOINT"] == (
            "http://127.0.0.1:4999"
        )
    traceview = by_name("traceview").environment(traced)
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in traceview
    assert traceview["TRACEVIEW_PORT"] == "4999" and traceview["TRACEVIEW_GRPC_PORT"] == "0"
    assert traceview["TRACEVIEW_HOST"] == "127.0.0.1"
    assert by_name("traceview") not in PROCESSES, "traceview runs only when asked"


def test_a_taken_traces_port_stops_it_only_with_traces() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "tools.up", "--api-port", str(free_port()),
             "--registry-port", str(free_port()), "--grpc-port", "0",
             "--traces", "--traces-port", str(taken)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert f"port {taken} is taken (needed by --traces-port)" in result.stderr
