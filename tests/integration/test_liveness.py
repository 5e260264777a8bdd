"""A stopped or killed worker -> 503 within the liveness window; back -> served again."""

import signal
from collections.abc import Iterator

import pytest

from tests.integration.stack import Stack, wait_until

LIVENESS_WINDOW = 5.0
# The registry's window, the gateway's 1 s cache, and slack for a loaded machine.
NOTICE_WITHIN = LIVENESS_WINDOW + 1.0 + 4.0


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with Stack(liveness_window=LIVENESS_WINDOW, RESULT_TTL="600", DEFAULT_TIMEOUT="30") as stack:
        yield stack


def _status(stack: Stack, model: str) -> int:
    # A short per-request timeout: while the registry still counts a hung worker, this is 504.
    response = stack.http.post(f"/predict/{model}?timeout=1", json={"data": "ping"})
    return response.status_code


def _wait_for_503(stack: Stack, model: str) -> None:
    wait_until(lambda: _status(stack, model) == 503, NOTICE_WITHIN, what=f"{model} -> 503")


def test_hung_worker_is_503_then_served_after_resume(stack: Stack) -> None:
    model = stack.model_name("model_a")
    worker = stack.start_worker("models.model_a", model)
    assert _status(stack, model) == 200
    worker.signal(signal.SIGSTOP)
    try:
        _wait_for_503(stack, model)
        body = stack.http.post(f"/predict/{model}", json={"data": "x"}).json()
        assert body["error"]["code"] == "model_unavailable"
        assert body["error"]["model"] == model
        listed = {m["name"]: m for m in stack.http.get("/models").json()}
        assert listed[model]["status"] == "dead"
    finally:
        worker.signal(signal.SIGCONT)
    wait_until(lambda: _status(stack, model) == 200, 30.0, what=f"{model} served again")


def test_killed_worker_is_503_then_served_by_a_new_one(stack: Stack) -> None:
    model = stack.model_name("model_a")
    worker = stack.start_worker("models.model_a", model)
    assert _status(stack, model) == 200
    worker.signal(signal.SIGKILL)
    worker.process.wait(30)
    _wait_for_503(stack, model)
    stack.start_worker("models.model_a", model)
    response = stack.http.post(f"/predict/{model}", json={"data": "again"})
    assert response.status_code == 200, response.text
    assert response.json() == {"reply": "Processed message: again"}
