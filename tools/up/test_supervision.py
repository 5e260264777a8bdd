"""//:up keeps serving when a worker dies: 503 for its model meanwhile, then a restart; with
``--traces`` it runs traceview too.

Runs the launcher as ``bazel run //:up`` would, on free ports, with the test target's brokers.
"""

import os
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tools.stack.ports import free_port
from tools.stack.waiting import wait_until

RESTART_DELAY = 10.0  # long enough to see the 503 before the new worker registers


class Up:
    """A running launcher and what it printed."""

    def __init__(self) -> None:
        self.api_url = ""
        self.log = Path(tempfile.mkdtemp()) / "up.log"
        api_port, registry_port, grpc_port = free_port(), free_port(), free_port()
        self.api_url = f"http://127.0.0.1:{api_port}"
        self.grpc_target = f"127.0.0.1:{grpc_port}"
        traces_port = free_port()
        self.traces_url = f"http://127.0.0.1:{traces_port}"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tools.up", "--api-port", str(api_port),
                 "--registry-port", str(registry_port), "--grpc-port", str(grpc_port),
                 "--restart-delay", str(RESTART_DELAY),
                 "--traces", "--traces-port", str(traces_port), "--traces-grpc-port", "0"],
                env={**os.environ, "LIVENESS_WINDOW": "2"},
                stdout=out,
                stderr=subprocess.STDOUT,
            )  # fmt: skip

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def pids(self) -> dict[str, int]:
        found = re.search(r"pids: (.*?); logs in", self.output())
        assert found, self.output()
        return {name: int(pid) for name, pid in (p.split() for p in found.group(1).split(", "))}


@pytest.fixture(scope="module")
def up() -> Iterator[Up]:
    launcher = Up()
    try:
        wait_until(lambda: "pids:" in launcher.output() or launcher.process.poll() is not None,
                   180, interval=0.5, what="//:up ready")  # fmt: skip
        assert launcher.process.poll() is None, launcher.output()
        yield launcher
    finally:
        launcher.process.send_signal(signal.SIGINT)
        launcher.process.wait(120)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _predict_a(client: httpx.Client) -> httpx.Response:
    # A short timeout: a request queued just before the registry saw the worker die waits for
    # it, and must not hold up the polling.
    return client.post("/predict/model_a", json={"data": "x"}, params={"timeout": 2})


def test_every_worker_serves_metrics_on_its_own_port(up: Up) -> None:
    found = re.search(r"metrics: (.*)", up.output())
    assert found, up.output()
    workers = dict(re.findall(r"(model_\w+) (http://\S+/metrics)", found.group(1)))
    assert set(workers) == {"model_a", "model_b", "model_c"}, found.group(0)
    assert len(set(workers.values())) == len(workers), found.group(0)
    for name, url in workers.items():
        response = httpx.get(url, timeout=10)
        assert response.status_code == 200, (name, url)
        assert "conveyor_worker_unsettled_tasks" in response.text, name


def test_the_gateway_serves_grpc_on_its_port(up: Up) -> None:
    assert f"gRPC (Open Inference Protocol) at {up.grpc_target}" in up.output()
    with grpc.insecure_channel(up.grpc_target) as channel:
        answer = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=10
        )
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


def test_traceview_runs_when_asked(up: Up) -> None:
    assert "traceview" in up.pids()
    assert f"traces: viewer at {up.traces_url}/" in up.output()
    services = httpx.get(f"{up.traces_url}/api/services", timeout=5)
    assert services.status_code == 200 and isinstance(services.json()["services"], list)
    assert httpx.get(f"{up.traces_url}/", timeout=5).headers["content-type"].startswith("text/html")


def test_a_killed_worker_gives_503_then_is_restarted(up: Up) -> None:
    pids = up.pids()
    client = httpx.Client(base_url=up.api_url, timeout=30)
    assert client.post("/predict/model_a", json={"data": "x"}).status_code == 200

    os.kill(pids["model_a"], signal.SIGKILL)
    unavailable = wait_until(
        lambda: (r := _predict_a(client)).status_code == 503 and r,
        60, interval=0.3, what="503 for model_a",
    )  # fmt: skip
    assert unavailable.headers["content-type"].startswith("application/json")
    assert unavailable.json()["error"]["code"]
    assert (
        client.post("/predict/model_b", json={"features": [5.1, 3.5, 1.4, 0.2]}).status_code == 200
    )
    assert "model_a exited with -9; restarting" in up.output()

    wait_until(lambda: _predict_a(client).status_code == 200,
               120, interval=0.5, what="model_a served again")  # fmt: skip
    assert "model_a restarted" in up.output()
    assert up.process.poll() is None, "the launcher must keep running"


def test_ctrl_c_stops_everything(up: Up) -> None:
    before = set(up.pids().values())
    restarted = re.findall(r"model_a restarted \(pid (\d+)", up.output())
    up.process.send_signal(signal.SIGINT)
    assert up.process.wait(120) == 0, up.output()
    children = before | {int(pid) for pid in restarted}
    wait_until(lambda: not any(_alive(pid) for pid in children), 30, what="children gone")
    assert "up: stopped" in up.output()
