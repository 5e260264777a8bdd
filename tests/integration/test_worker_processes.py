"""``WORKER_PROCESSES=2``: one supervisor runs two worker processes, each a live instance of its
own in the registry; a child that dies is replaced; SIGTERM to the supervisor alone stops both
cleanly (it forwards the signal) and every instance deregisters."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.stack import Stack, wait_until

LIVENESS_WINDOW = 5.0


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with Stack(liveness_window=LIVENESS_WINDOW) as stack:
        yield stack


def _children(pid: int) -> list[int]:
    """The processes ``pid`` started that still run (Linux's /proc)."""
    try:
        return [
            int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        ]
    except FileNotFoundError:
        return []


def _predicts(stack: Stack, model: str, data: str) -> None:
    response = stack.http.post(f"/predict/{model}", json={"data": data})
    assert response.status_code == 200, response.text
    assert response.json() == {"reply": f"Processed message: {data}"}


def test_two_processes_are_two_instances_and_a_dead_one_is_replaced(stack: Stack) -> None:
    model = stack.model_name("model_a")
    supervisor = stack.start_worker("models.model_a", model, WORKER_PROCESSES="2", METRICS_PORT="0")
    registered = f"registered {model} version"
    wait_until(lambda: stack.instances(model) == 2, 60.0, what="two live instances")
    children = _children(supervisor.pid)
    assert len(children) == 2, children
    _predicts(stack, model, "two processes")

    doomed = children[0]
    os.kill(doomed, signal.SIGKILL)

    def replaced() -> list[int] | None:
        now = _children(supervisor.pid)
        return now if len(now) == 2 and doomed not in now else None

    survivors = wait_until(replaced, 30.0, what="the dead child replaced")
    assert children[1] in survivors
    wait_until(
        lambda: supervisor.log().count(registered) >= 3, 60.0, what="the replacement registered"
    )
    # The dead child's registration lapses after the liveness window; two instances remain.
    wait_until(
        lambda: stack.instances(model) == 2, LIVENESS_WINDOW + 30.0, what="two live instances"
    )
    _predicts(stack, model, "after a replacement")
    assert supervisor.alive()

    os.kill(supervisor.pid, signal.SIGTERM)  # the supervisor alone: it forwards the signal
    assert supervisor.process.wait(60) == 0, supervisor.log()
    assert not any(Path(f"/proc/{pid}").exists() for pid in survivors)
    assert stack.instances(model) == 0  # each child deregistered on its way out


def _two_free_ports() -> int:
    """A port ``p`` such that ``p`` and ``p + 1`` are both free now."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = int(probe.getsockname()[1])
        with socket.socket() as second:
            try:
                second.bind(("127.0.0.1", base + 1))
            except OSError:
                continue
        return base
    raise AssertionError("no two free ports in a row")


def test_each_process_serves_metrics_on_a_port_of_its_own(stack: Stack) -> None:
    model = stack.model_name("model_a")
    base = _two_free_ports()
    supervisor = stack.start_worker(
        "models.model_a", model, WORKER_PROCESSES="2", METRICS_PORT=str(base)
    )
    wait_until(lambda: stack.instances(model) == 2, 60.0, what="two live instances")
    _predicts(stack, model, "counted")
    for port in (base, base + 1):

        def served(port: int = port) -> bool:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
            except httpx.HTTPError:
                return False
            return answer.status_code == 200 and "conveyor_worker_unsettled_tasks" in answer.text

        wait_until(served, 30.0, what=f"metrics on {port}")
    assert supervisor.stop() == 0, supervisor.log()
