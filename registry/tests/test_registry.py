"""Registry API against the real Redis: registration, heartbeat, expiry, restart."""

import base64
import os
import time
import uuid
from collections.abc import Iterator

import pytest
import redis
from fastapi.testclient import TestClient

from proto import model_a_pb2
from registry import Settings, create_app
from worker_base.schema import file_descriptor_set

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
WINDOW = 1.0


def _registration() -> dict[str, object]:
    fds = file_descriptor_set(
        model_a_pb2.ModelARequest.DESCRIPTOR, model_a_pb2.ModelAResponse.DESCRIPTOR
    )
    return {
        "version": "7",
        "queue": "conveyor.model.m",
        "request_type": "conveyor.v1.ModelARequest",
        "response_type": "conveyor.v1.ModelAResponse",
        "descriptor_set": base64.b64encode(fds).decode(),
        "example_request": {"data": "example"},
    }


@pytest.fixture
def settings() -> Iterator[Settings]:
    prefix = f"test:{uuid.uuid4().hex}:registry:"
    yield Settings(redis_url=REDIS_URL, liveness_window=WINDOW, registry_key_prefix=prefix)
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


def test_register_shows_model_alive_with_schemas(client: TestClient) -> None:
    assert client.post("/models/m/instances/i1", json=_registration()).status_code == 201
    assert client.post("/models/m/instances/i2", json=_registration()).status_code == 201
    detail = client.get("/models/m").json()
    assert (detail["status"], detail["instances"], detail["version"]) == ("alive", 2, "7")
    assert detail["request"]["fields"][0]["name"] == "data"
    assert detail["response"]["type"] == "conveyor.v1.ModelAResponse"
    assert detail["example_request"] == {"data": "example"}
    assert [m["name"] for m in client.get("/models").json()] == ["m"]


def test_instance_expires_without_heartbeat(client: TestClient) -> None:
    client.post("/models/m/instances/i1", json=_registration())
    client.post("/models/m/instances/i2", json=_registration())
    deadline = time.monotonic() + WINDOW * 4
    while time.monotonic() < deadline and client.get("/models/m").json()["instances"] == 2:
        assert client.put("/models/m/instances/i1").status_code == 200
        time.sleep(WINDOW / 5)
    assert client.get("/models/m").json()["instances"] == 1
    assert client.put("/models/m/instances/i2").status_code == 404


def test_deregister_makes_model_dead(client: TestClient) -> None:
    client.post("/models/m/instances/i1", json=_registration())
    assert client.delete("/models/m/instances/i1").status_code == 204
    assert client.get("/models/m").json()["status"] == "dead"
    assert client.delete("/models/m/instances/i1").status_code == 404


def test_unknown_model_is_404(client: TestClient) -> None:
    response = client.get("/models/nope")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "ModelNotFound"


def test_registration_with_missing_type_is_422(client: TestClient) -> None:
    body = {**_registration(), "response_type": "conveyor.v1.Nope"}
    assert client.post("/models/m/instances/i1", json=body).status_code == 422
    body = {**_registration(), "descriptor_set": "!!!"}
    assert client.post("/models/m/instances/i1", json=body).status_code == 422


def test_restart_loses_nothing(settings: Settings) -> None:
    with TestClient(create_app(settings)) as first:
        first.post("/models/m/instances/i1", json=_registration())
    with TestClient(create_app(settings)) as second:
        assert second.get("/models/m").json()["instances"] == 1
