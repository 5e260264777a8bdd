"""Registry API against the real Redis: registration, heartbeat, expiry, restart."""

import base64
import os
import time
import uuid
from collections.abc import Iterator

import pytest
import redis
from fastapi.testclient import TestClient

from conveyor.descriptors import file_descriptor_set
from proto import model_a_pb2
from registry import Settings, create_app

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
    assert response.json() == {
        "error": {"code": "model_not_found", "message": "model 'nope' is not registered"}
    }


def test_registration_with_missing_type_is_422(client: TestClient) -> None:
    body = {**_registration(), "response_type": "conveyor.v1.Nope"}
    missing_type = client.post("/models/m/instances/i1", json=body)
    assert missing_type.status_code == 422
    assert missing_type.json()["error"]["code"] == "invalid_schema"
    assert "conveyor.v1.Nope" in missing_type.json()["error"]["message"]
    body = {**_registration(), "descriptor_set": "!!!"}
    assert client.post("/models/m/instances/i1", json=body).status_code == 422


def test_a_bad_body_gets_the_shared_error_shape_naming_the_field(client: TestClient) -> None:
    body = {**_registration(), "version": ""}
    response = client.post("/models/m/instances/i1", json=body)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["field"] == "version"
    assert "detail" not in response.json()
    not_json = client.post(
        "/models/m/instances/i1", content=b"{", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 422
    assert not_json.json()["error"]["code"] == "invalid_request"


def test_unknown_paths_and_methods_are_json(client: TestClient) -> None:
    missing = client.get("/nowhere")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "not_found")
    wrong_method = client.patch("/models/m")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["code"] == "method_not_allowed"


def test_an_unexpected_failure_is_a_json_500(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: object) -> object:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(client.app.state.store, "list", broken)  # type: ignore[attr-defined]
    quiet = TestClient(client.app, raise_server_exceptions=False)
    response = quiet.get("/models")
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal"
    assert "disk" not in response.text


def test_restart_loses_nothing(settings: Settings) -> None:
    with TestClient(create_app(settings)) as first:
        first.post("/models/m/instances/i1", json=_registration())
    with TestClient(create_app(settings)) as second:
        assert second.get("/models/m").json()["instances"] == 1


def test_versions_are_listed_and_the_default_is_the_highest_live_one(client: TestClient) -> None:
    assert client.post("/models/m/instances/a", json=_registration()).status_code == 201
    v10 = {**_registration(), "version": "10"}
    assert client.post("/models/m/instances/b", json=v10).status_code == 201
    detail = client.get("/models/m").json()
    assert detail["version"] == "10"  # numeric order: 10 > 7
    assert [v["version"] for v in detail["versions"]] == ["7", "10"]
    assert client.get("/models/m/versions/7").json()["version"] == "7"
    assert client.get("/models/m/versions/8").status_code == 404
    client.delete("/models/m/instances/b")
    assert client.get("/models/m").json()["version"] == "7"  # 10 has no live instance


def test_a_changed_schema_needs_a_new_version(client: TestClient) -> None:
    assert client.post("/models/m/instances/a", json=_registration()).status_code == 201
    other = file_descriptor_set(
        model_a_pb2.ModelAResponse.DESCRIPTOR, model_a_pb2.ModelARequest.DESCRIPTOR
    )
    changed = {
        **_registration(),
        "request_type": "conveyor.v1.ModelAResponse",
        "response_type": "conveyor.v1.ModelARequest",
        "descriptor_set": base64.b64encode(other).decode(),
    }
    refused = client.post("/models/m/instances/b", json=changed)
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "schema_conflict"
    assert client.post("/models/m/instances/b", json={**changed, "version": "8"}).status_code == 201
    # The same schema again (a restarted worker) is fine, also with another example.
    same = {**_registration(), "example_request": {"data": "other"}}
    assert client.post("/models/m/instances/c", json=same).status_code == 201
    # A version without live instances can be forgotten, then take a new schema.
    assert client.delete("/models/m/versions/7").status_code == 409  # a and c are alive
    client.delete("/models/m/instances/a")
    client.delete("/models/m/instances/c")
    assert client.delete("/models/m/versions/7").status_code == 204
    assert client.post("/models/m/instances/d", json=changed).status_code == 201


def test_bad_model_names_and_versions_are_refused(client: TestClient) -> None:
    for name in ("a%20b", "a.b", "x" * 101):
        assert client.post(f"/models/{name}/instances/i", json=_registration()).status_code == 422
    bad_version = {**_registration(), "version": "1/2"}
    response = client.post("/models/m/instances/i", json=bad_version)
    assert (response.status_code, response.json()["error"]["field"]) == (422, "version")


def test_mutations_need_the_registry_key_when_one_is_set(settings: Settings) -> None:
    key = "k" * 32
    keyed = settings.model_copy(update={"registry_key": key})
    with TestClient(create_app(keyed)) as client:
        missing = client.post("/models/m/instances/i", json=_registration())
        assert missing.status_code == 401
        assert missing.json() == {
            "error": {"code": "unauthorized", "message": "missing or wrong registry key"}
        }
        wrong = {"Authorization": "Bearer " + "x" * 32}
        assert (
            client.post("/models/m/instances/i", json=_registration(), headers=wrong).status_code
            == 401
        )
        right = {"Authorization": f"Bearer {key}"}
        assert (
            client.post("/models/m/instances/i", json=_registration(), headers=right).status_code
            == 201
        )
        assert client.put("/models/m/instances/i").status_code == 401
        assert client.put("/models/m/instances/i", headers=right).status_code == 200
        assert client.get("/models/m").status_code == 200  # reading stays open
        assert client.delete("/models/m/versions/7").status_code == 401


def _features(client: TestClient, version: str = "7") -> list[str]:
    """The features the registry shows for ``version`` of model m (also in the listing)."""
    detail = client.get(f"/models/m/versions/{version}").json()
    listed = client.get("/models").json()[0]
    [summary] = [v for v in listed["versions"] if v["version"] == version]
    assert summary["features"] == detail["features"]
    return list(detail["features"])


def test_a_version_has_the_features_every_live_instance_announced(client: TestClient) -> None:
    packing = {**_registration(), "features": ["task-batch", "zz-other"]}
    assert client.post("/models/m/instances/new", json=packing).status_code == 201
    assert _features(client) == ["task-batch", "zz-other"]
    assert client.post("/models/m/instances/old", json=_registration()).status_code == 201
    assert _features(client) == []  # an older worker would reject packed tasks
    assert client.delete("/models/m/instances/old").status_code == 204
    assert _features(client) == ["task-batch", "zz-other"]
    assert client.get("/models").json()[0]["features"] == ["task-batch", "zz-other"]
    client.delete("/models/m/instances/new")
    assert _features(client) == []  # no live instance: no features


def test_an_expired_instance_does_not_count_for_the_features(client: TestClient) -> None:
    packing = {**_registration(), "features": ["task-batch"]}
    client.post("/models/m/instances/new", json=packing)
    client.post("/models/m/instances/old", json=_registration())
    deadline = time.monotonic() + WINDOW * 4
    while time.monotonic() < deadline and client.get("/models/m").json()["instances"] == 2:
        assert client.put("/models/m/instances/new").status_code == 200
        time.sleep(WINDOW / 5)
    assert client.get("/models/m").json()["instances"] == 1
    assert _features(client) == ["task-batch"]


def test_features_are_per_instance_not_part_of_the_schema(client: TestClient) -> None:
    assert client.post("/models/m/instances/a", json=_registration()).status_code == 201
    packing = {**_registration(), "features": ["task-batch"]}
    assert client.post("/models/m/instances/b", json=packing).status_code == 201
    assert client.post("/models/m/instances/a", json=packing).status_code == 201  # upgraded
    assert _features(client) == ["task-batch"]
    assert client.post("/models/m/instances/a", json=_registration()).status_code == 201
    assert _features(client) == []  # rolled back: a announces none again
    v8 = {**packing, "version": "8"}
    assert client.post("/models/m/instances/c", json=v8).status_code == 201
    assert (_features(client, "7"), _features(client, "8")) == ([], ["task-batch"])


def test_instances_stored_before_features_existed_have_none(
    client: TestClient, settings: Settings
) -> None:
    packing = {**_registration(), "features": ["task-batch"]}
    client.post("/models/m/instances/a", json=packing)
    store = redis.Redis.from_url(REDIS_URL)
    store.delete(f"{settings.registry_key_prefix}instance-features:m")
    store.close()
    detail = client.get("/models/m").json()
    assert (detail["instances"], detail["features"]) == (1, [])


def test_bad_features_are_refused(client: TestClient) -> None:
    for features in (["Task_Batch"], [""], ["x" * 65], ["a,b"], [f"f{i}" for i in range(33)]):
        body = {**_registration(), "features": features}
        response = client.post("/models/m/instances/i", json=body)
        assert response.status_code == 422, features
        assert "body.features" in response.json()["error"]["message"], response.json()
