"""No result before the timeout -> 504 naming the task, which still finishes later."""

from collections.abc import Iterator

import pytest

from tests.integration.stack import SLOW_MODEL, Stack, wait_until


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with Stack(RESULT_TTL="600", DEFAULT_TIMEOUT="1", MAX_TIMEOUT="60") as stack:
        yield stack


def test_timeout_is_504_and_task_can_be_polled(stack: Stack) -> None:
    model = stack.model_name("slow")
    stack.start_worker(SLOW_MODEL, model, SLOW_MODEL_COUNTER_PREFIX=f"test:{stack.id}:slow:")
    response = stack.http.post(f"/predict/{model}?timeout=0.5", json={"data": "t1:3"})
    assert response.status_code == 504, response.text
    error = response.json()["error"]
    assert error["code"] == "timeout"
    assert error["model"] == model

    def finished() -> dict[str, object] | None:
        status = stack.http.get(error["status_url"]).json()
        return status if status["status"] != "pending" else None

    status = wait_until(finished, 60.0, what="timed-out task finished")
    assert status["status"] == "done"
    assert "tag=t1" in status["result"]["reply"]


def test_default_timeout_applies_and_override_extends_it(stack: Stack) -> None:
    model = stack.model_name("slow")
    stack.start_worker(SLOW_MODEL, model, SLOW_MODEL_COUNTER_PREFIX=f"test:{stack.id}:slow:")
    too_slow = stack.http.post(f"/predict/{model}", json={"data": "t2:3"})
    assert too_slow.status_code == 504, too_slow.text
    patient = stack.http.post(f"/predict/{model}?timeout=50", json={"data": "t3:0.2"})
    assert patient.status_code == 200, patient.text
    assert "tag=t3" in patient.json()["reply"]


def test_timeout_above_maximum_is_422(stack: Stack) -> None:
    model = stack.model_name("slow")
    stack.start_worker(SLOW_MODEL, model, SLOW_MODEL_COUNTER_PREFIX=f"test:{stack.id}:slow:")
    response = stack.http.post(f"/predict/{model}?timeout=61", json={"data": "t4:0"})
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "timeout"
