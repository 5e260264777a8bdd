"""Two workers of one model count as one model with two instances and share its tasks."""

from collections.abc import Iterator

import pytest

from tests.integration.stack import SLOW_MODEL, Stack, wait_until

TASKS = 12


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with Stack(RESULT_TTL="600") as stack:
        yield stack


def test_two_workers_share_the_load(stack: Stack) -> None:
    model = stack.model_name("slow")
    env = {"SLOW_MODEL_COUNTER_PREFIX": f"test:{stack.id}:slow:", "WORKER_PREFETCH": "1"}
    first = stack.start_worker(SLOW_MODEL, model, **env)
    second = stack.start_worker(SLOW_MODEL, model, **env)
    listed = {m["name"]: m for m in stack.http.get("/models").json()}
    assert listed[model]["instances"] == 2

    task_ids = []
    for i in range(TASKS):
        response = stack.http.post(f"/predict/{model}?mode=async", json={"data": f"s{i}:0.3"})
        assert response.status_code == 202, response.text
        task_ids.append(response.json()["task_id"])

    def all_done() -> list[dict[str, object]] | None:
        statuses = [stack.http.get(f"/tasks/{task_id}").json() for task_id in task_ids]
        return statuses if all(s["status"] == "done" for s in statuses) else None

    statuses = wait_until(all_done, 120.0, interval=0.5, what="all tasks done")
    pids = {str(s["result"]["reply"]).split()[0] for s in statuses}
    assert pids == {f"pid={first.pid}", f"pid={second.pid}"}
