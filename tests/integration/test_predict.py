"""The happy path and the client errors, against real processes and brokers."""

import math
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.stack import Served, wait_until


@pytest.fixture(scope="module")
def stack() -> Iterator[Served]:
    with Served(RESULT_TTL="600") as stack:
        yield stack


def test_seed_curl_on_model_a(stack: Served) -> None:
    response = stack.http.post(
        f"/predict/{stack.model_a}",
        json={"data": "example"},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"reply": "Processed message: example"}


def test_model_b_classifies_iris(stack: Served) -> None:
    setosa = stack.http.post(
        f"/predict/{stack.model_b}",
        json={"features": [5.1, 3.5, 1.4, 0.2]},
    )
    virginica = stack.http.post(
        f"/predict/{stack.model_b}",
        json={"features": [6.7, 3.0, 5.2, 2.3]},
    )
    assert setosa.status_code == 200, setosa.text
    assert virginica.status_code == 200, virginica.text
    for body in (setosa.json(), virginica.json()):
        probabilities = body["probabilities"]
        assert set(probabilities) == {"setosa", "versicolor", "virginica"}
        assert math.isclose(sum(probabilities.values()), 1.0, rel_tol=1e-6)
        assert body["label"] == max(probabilities, key=probabilities.__getitem__)
    assert setosa.json()["label"] == "setosa"
    assert virginica.json()["label"] == "virginica"


def test_async_submit_and_poll(stack: Served) -> None:
    model = stack.model_a
    submitted = stack.http.post(f"/predict/{model}?mode=async", json={"data": "later"})
    assert submitted.status_code == 202, submitted.text
    body = submitted.json()
    assert body["status"] == "pending"
    assert body["status_url"] == f"/tasks/{body['task_id']}"

    def finished() -> dict[str, object] | None:
        status = stack.http.get(body["status_url"]).json()
        return status if status["status"] != "pending" else None

    status = wait_until(finished, 30.0, what="async task done")
    assert status == {
        "task_id": body["task_id"],
        "model": model,
        "version": "1",
        "status": "done",
        "result": {"reply": "Processed message: later"},
    }


def test_async_failure_is_reported(stack: Served) -> None:
    submitted = stack.http.post(
        f"/predict/{stack.model_b}?mode=async",
        json={"features": [1.0]},
    )
    assert submitted.status_code == 202, submitted.text

    def finished() -> dict[str, object] | None:
        status = stack.http.get(submitted.json()["status_url"]).json()
        return status if status["status"] != "pending" else None

    status = wait_until(finished, 30.0, what="async task failed")
    assert status["status"] == "failed"
    assert status["error"]["code"] == "invalid_argument"
    assert status["error"]["field"] == "features"


def test_unknown_model_is_404(stack: Served) -> None:
    response = stack.http.post(f"/predict/no_such_model_{stack.id}", json={"data": "x"})
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "model_not_found"
    assert error["model"] == f"no_such_model_{stack.id}"


def test_non_json_body_is_422(stack: Served) -> None:
    response = stack.http.post(
        f"/predict/{stack.model_a}",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "body"
    assert "JSON" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("attr", "body", "field"),
    [
        ("model_a", {"dta": "typo"}, "dta"),
        ("model_a", {"data": 12}, "data"),
        ("model_b", {"features": "abc"}, "features"),
        ("model_b", {"features": [1.0, "x", 2.0, 3.0]}, "features[1]"),
    ],
)
def test_schema_invalid_body_is_422_naming_the_field(
    stack: Served, attr: str, body: dict[str, object], field: str
) -> None:
    response = stack.http.post(f"/predict/{getattr(stack, attr)}", json=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["field"] == field


def test_model_rejecting_a_request_is_422(stack: Served) -> None:
    response = stack.http.post(
        f"/predict/{stack.model_b}",
        json={"features": [1.0, 2.0]},
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == "features"


def test_models_health_and_docs(stack: Served) -> None:
    listed = {m["name"]: m for m in stack.http.get("/models").json()}
    for name in (stack.model_a, stack.model_b):
        assert listed[name]["status"] == "alive"
        assert listed[name]["instances"] == 1
    assert stack.http.get("/healthz").json() == {"status": "ok"}
    ready = stack.http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"rabbitmq": True, "redis": True, "registry": True}
    assert stack.http.get("/docs").status_code == 200
    paths = stack.http.get("/openapi.json").json()["paths"]
    assert {"/predict/{model}", "/tasks/{task_id}", "/models", "/models/{model}"} <= set(paths)


def test_each_model_has_an_operation_with_its_exact_schemas(stack: Served) -> None:
    document = stack.http.get("/openapi.json").json()
    schemas = document["components"]["schemas"]

    def body(path: str, status: str | None = None) -> dict[str, Any]:
        operation = document["paths"][path]["post"]
        where = operation["responses"][status] if status else operation["requestBody"]
        reference = where["content"]["application/json"]["schema"]["$ref"]
        found: dict[str, Any] = schemas[reference.rsplit("/", 1)[1]]
        return found

    request = body(f"/predict/{stack.model_b}")
    assert request["properties"]["features"]["items"]["type"] == "number"
    assert request["additionalProperties"] is False
    assert body(f"/predict/{stack.model_b}", "200")["required"] == ["label", "probabilities"]
    assert body(f"/predict/{stack.model_a}")["properties"] == {"data": {"type": ["string", "null"]}}
    # What the schema refuses, the gateway refuses: model_b takes no "data", no true.
    for wrong in ({"data": "example"}, {"features": [True, 1, 2, 3]}, {"features": ["1", 1, 2, 3]}):
        response = stack.http.post(f"/predict/{stack.model_b}", json=wrong)
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "invalid_request"


def test_registry_shows_schemas_and_example(stack: Served) -> None:
    import httpx

    detail = httpx.get(f"{stack.registry_url}/models/{stack.model_b}").json()
    assert detail["request"]["type"] == "conveyor.v1.ModelBRequest"
    assert [f["name"] for f in detail["request"]["fields"]] == ["features"]
    assert detail["example_request"] == {"features": [5.1, 3.5, 1.4, 0.2]}
    served = stack.http.post(
        f"/predict/{stack.model_b}",
        json=detail["example_request"],
    )
    assert served.json()["label"] == "setosa"
    through_gateway = stack.http.get(f"/models/{stack.model_b}").json()
    assert through_gateway["example_request"] == detail["example_request"]
    assert through_gateway["request"]["type"] == "conveyor.v1.ModelBRequest"


def test_unknown_task_is_404(stack: Served) -> None:
    response = stack.http.get(f"/tasks/nope{time.time_ns()}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "task_not_found"
