"""A model started while the gateway runs is listed and served without restarting anything."""

from collections.abc import Iterator

import pytest

from tests.integration.stack import SLOW_MODEL, Stack, wait_until


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with Stack(RESULT_TTL="600") as stack:
        yield stack


def test_new_model_appears_and_is_served(stack: Stack) -> None:
    model = stack.model_name("late")
    assert model not in {m["name"] for m in stack.http.get("/models").json()}
    assert stack.http.post(f"/predict/{model}", json={"data": "x:0"}).status_code == 404
    assert f"/predict/{model}" not in stack.http.get("/openapi.json").json()["paths"]

    stack.start_worker(SLOW_MODEL, model, SLOW_MODEL_COUNTER_PREFIX=f"test:{stack.id}:slow:")

    listed = {m["name"]: m for m in stack.http.get("/models").json()}
    assert listed[model]["status"] == "alive"
    # The OpenAPI document learns it too, within REGISTRY_CACHE_SECONDS (1 s).
    wait_until(
        lambda: f"/predict/{model}" in stack.http.get("/openapi.json").json()["paths"],
        5.0,
        what=f"{model} in /openapi.json",
    )
    response = stack.http.post(f"/predict/{model}", json={"data": "late:0"})
    assert response.status_code == 200, response.text
    assert response.json()["reply"].endswith("tag=late")
