"""A task that kills its worker every time is dead-lettered, and can be re-driven once fixed.

The poison task's workers die by SIGKILL (tests/faults/poison_model.py); the test restarts a
worker after each death, as a supervisor would. After ``MAX_DELIVERIES`` deaths the next worker
dead-letters the task without running it: its caller sees ``failed`` / ``dead_lettered``,
``/models/{name}`` counts one dead letter, and the other tasks went through. Then a worker that
no longer dies is started and ``python -m tools.redrive`` moves the task back; it completes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from functools import partial

import pytest

from tests.faults.brokers import Brokers
from tests.integration.stack import Service, Stack, wait_until

MAX_DELIVERIES = 3
POISON_MODEL = "tests.faults.poison_model"


@pytest.fixture(scope="module")
def stack(brokers: Brokers) -> Iterator[Stack]:
    with Stack(RESULT_TTL="600") as stack:
        yield stack


def _submit(stack: Stack, model: str, data: str) -> str:
    response = stack.http.post(f"/predict/{model}", params={"mode": "async"}, json={"data": data})
    assert response.status_code == 202, response.text
    return str(response.json()["task_id"])


def _state(stack: Stack, task_id: str) -> dict[str, object]:
    response = stack.http.get(f"/tasks/{task_id}")
    assert response.status_code == 200, response.text
    state: dict[str, object] = response.json()
    return state


def _finished(stack: Stack, task_id: str) -> bool:
    return _state(stack, task_id)["status"] != "pending"


def _worker(stack: Stack, model: str, label: str, **env: str) -> Service:
    worker = Service(
        POISON_MODEL,
        {
            "AMQP_URL": os.environ["AMQP_URL"],
            "REDIS_URL": os.environ["REDIS_URL"],
            "REGISTRY_URL": stack.registry_url,
            "MODEL_NAME": model,
            "MAX_DELIVERIES": str(MAX_DELIVERIES),
            **env,
        },
        stack.log_dir,
        label,
    )
    stack.workers.append(worker)
    return worker


def test_poison_task_is_dead_lettered_then_redriven(stack: Stack) -> None:
    model = stack.model_name("poison")
    first = stack.start_worker(POISON_MODEL, model, MAX_DELIVERIES=str(MAX_DELIVERIES))
    good_before = [_submit(stack, model, f"good-{i}") for i in range(5)]
    # Done before the poison comes, so no good task is in flight when a worker dies (it would
    # be redelivered, and count a delivery too).
    for task_id in good_before:
        wait_until(partial(_finished, stack, task_id), 60, what=task_id)
    poison = _submit(stack, model, "poison")

    deaths, worker = 0, first
    deadline = time.monotonic() + 180
    while _state(stack, poison)["status"] == "pending":
        assert time.monotonic() < deadline, f"still pending after {deaths} deaths"
        if worker.process.poll() is not None:
            assert worker.process.returncode == -9, worker.log()
            deaths += 1
            worker = _worker(stack, model, f"poison-{deaths}")
        time.sleep(0.1)

    state = _state(stack, poison)
    assert state["status"] == "failed", state
    error = state["error"]
    assert isinstance(error, dict) and error["code"] == "dead_lettered", state
    assert deaths == MAX_DELIVERIES, f"{deaths} deaths before dead-lettering"
    assert worker.process.poll() is None, "the worker that dead-lettered it must live"

    good_after = [_submit(stack, model, f"after-{i}") for i in range(5)]
    for task_id in good_before + good_after:
        wait_until(partial(_finished, stack, task_id), 60, what=f"task {task_id}")
        assert _state(stack, task_id)["status"] == "done", _state(stack, task_id)

    def dead_letters() -> object:
        response = stack.http.get(f"/models/{model}")
        assert response.status_code == 200, response.text
        return response.json().get("dead_letters")

    assert wait_until(lambda: dead_letters() == 1, 10, what="one dead letter counted")

    # The model is fixed: a worker that no longer dies replaces the old one; re-drive.
    worker.stop()
    _worker(stack, model, "cured", POISON_KILLS="0")
    redriven = subprocess.run(
        [sys.executable, "-m", "tools.redrive", "--model", model],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert redriven.returncode == 0, redriven.stderr
    assert '"moved": 1' in redriven.stdout and '"left": 0' in redriven.stdout, redriven.stdout
    wait_until(lambda: _state(stack, poison)["status"] != "failed", 30, what="re-driven")
    wait_until(lambda: _state(stack, poison)["status"] == "done", 60, what="re-driven task done")
    assert _state(stack, poison)["result"] == {"reply": "Processed message: poison"}
    # Nothing is left to re-drive: a second run finds no dead letter.
    again = subprocess.run(
        [sys.executable, "-m", "tools.redrive", "--model", model],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 0, again.stderr
    assert '"moved": 0, "skipped": 0, "left": 0' in again.stdout, again.stdout
    assert wait_until(lambda: dead_letters() == 0, 10, what="dead letters counted 0")


def test_redrive_of_unknown_model_fails_cleanly(stack: Stack) -> None:
    redriven = subprocess.run(
        [sys.executable, "-m", "tools.redrive", "--model", "no_such_model_anywhere"],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert redriven.returncode == 1
    assert '"code": "redrive_failed"' in redriven.stderr, redriven.stderr
