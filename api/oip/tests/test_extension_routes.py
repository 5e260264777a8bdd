"""The extensions' REST paths on the real gateway app with fakes behind it: Triton's JSON
shapes, the version forms, the index body, load and unload refused, errors as ``{"error"}``."""

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from redis.exceptions import ConnectionError as RedisConnectionError

from api.oip.tests.fakes import FakeCatalog, FakeStats, fake_gateway

B1 = {
    "success_count": 2,
    "success_ns": 7000,
    "queue_count": 2,
    "queue_ns": 3000,
    "compute_infer_count": 2,
    "compute_infer_ns": 4000,
    "inference_count": 2,
    "execution_count": 1,
    "fail_count": 1,
    "fail_ns": 900,
    "last_inference_ms": 1_700_000_000_123,
}


@pytest.fixture
def stats() -> FakeStats:
    return FakeStats({("model_b", "1"): B1})


@pytest.fixture
def client(stats: FakeStats) -> Iterator[TestClient]:
    yield TestClient(fake_gateway(stats=stats))  # no lifespan: nothing connects


def _error(response: Any, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == ["error"]
    assert isinstance(body["error"], str)
    return str(body["error"])


def _zero() -> dict[str, int]:
    return {"count": 0, "ns": 0}


def test_server_metadata_names_the_extensions(client: TestClient) -> None:
    extensions = client.get("/v2").json()["extensions"]
    assert {"statistics", "model_configuration", "model_repository"} <= set(extensions)


def test_a_versions_statistics_in_tritons_shape(client: TestClient) -> None:
    response = client.get("/v2/models/model_b/versions/1/stats")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "model_stats": [
            {
                "name": "model_b",
                "version": "1",
                "last_inference": 1_700_000_000_123,
                "inference_count": 2,
                "execution_count": 1,
                "inference_stats": {
                    "success": {"count": 2, "ns": 7000},
                    "fail": {"count": 1, "ns": 900},
                    "queue": {"count": 2, "ns": 3000},
                    "compute_input": _zero(),
                    "compute_infer": {"count": 2, "ns": 4000},
                    "compute_output": _zero(),
                    "cache_hit": _zero(),
                    "cache_miss": _zero(),
                },
                "batch_stats": [],
            }
        ]
    }


def test_statistics_of_a_model_and_of_every_model(client: TestClient) -> None:
    of_b = client.get("/v2/models/model_b/stats").json()["model_stats"]
    assert [(s["version"], s["inference_count"]) for s in of_b] == [("1", 2), ("2", 0)]
    every = client.get("/v2/models/stats").json()["model_stats"]
    assert [(s["name"], s["version"]) for s in every] == [
        ("model_a", "1"),
        ("model_b", "1"),
        ("model_b", "2"),
    ]


def test_statistics_errors(client: TestClient, stats: FakeStats) -> None:
    assert "nope" in _error(client.get("/v2/models/nope/stats"), 404)
    assert "9" in _error(client.get("/v2/models/model_b/versions/9/stats"), 404)
    stats.error = RedisConnectionError("refused")
    assert "Redis" in _error(client.get("/v2/models/model_b/stats"), 503)


def test_model_configuration(client: TestClient) -> None:
    response = client.get("/v2/models/model_b/config")
    assert response.status_code == 200, response.text
    config = response.json()
    assert config["name"] == "model_b"
    assert config["platform"] == "conveyor_protobuf"
    assert config["max_batch_size"] == 0
    assert config["version_policy"] == {"all": {}}
    assert config["input"] == [{"name": "features", "data_type": "TYPE_FP64", "dims": [-1]}]
    assert config["output"][0] == {"name": "label", "data_type": "TYPE_STRING", "dims": [1]}
    assert [o["name"] for o in config["output"]] == [
        "label",
        "probabilities",
        "probabilities_keys",
    ]
    versioned = client.get("/v2/models/model_a/versions/1/config").json()
    assert versioned["input"] == [{"name": "data", "data_type": "TYPE_STRING", "dims": [1]}]
    assert "nope" in _error(client.get("/v2/models/nope/config"), 404)


@pytest.mark.parametrize(
    ("method", "body", "query"),
    [
        ("POST", b"", ""),
        ("POST", b"{}", ""),
        ("POST", b'{"ready": false}', ""),
        ("GET", b"", ""),
        ("GET", b"", "?ready=false"),
    ],
)
def test_repository_index(client: TestClient, method: str, body: bytes, query: str) -> None:
    response = client.request(method, f"/v2/repository/index{query}", content=body)
    assert response.status_code == 200, response.text
    assert response.json() == [
        {"name": "model_a", "version": "1", "state": "READY", "reason": ""},
        {"name": "model_b", "version": "1", "state": "READY", "reason": ""},
        {"name": "model_b", "version": "2", "state": "READY", "reason": ""},
    ]


def test_the_ready_index_leaves_out_versions_without_a_live_worker(client: TestClient) -> None:
    catalog: FakeCatalog = client.app.state.catalog  # type: ignore[attr-defined]
    catalog.put(dataclasses.replace(catalog.models[("model_b", "2")], instances=0))
    every = client.post("/v2/repository/index", json={"ready": False}).json()
    assert every[-1] == {
        "name": "model_b",
        "version": "2",
        "state": "UNAVAILABLE",
        "reason": "no live worker",
    }
    ready = client.post("/v2/repository/index", json={"ready": True}).json()
    assert [(e["name"], e["version"]) for e in ready] == [("model_a", "1"), ("model_b", "1")]
    assert client.get("/v2/repository/index?ready=true").json() == ready


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (b"{not json", "not JSON"),
        (b"[true]", "JSON object"),
        (b'{"ready": "yes"}', "true or false"),
    ],
)
def test_a_bad_index_request_is_400(client: TestClient, body: bytes, said: str) -> None:
    assert said in _error(client.post("/v2/repository/index", content=body), 400)


@pytest.mark.parametrize("action", ["load", "unload"])
def test_load_and_unload_are_unsupported(client: TestClient, action: str) -> None:
    response = client.post(f"/v2/repository/models/model_a/{action}", json={"parameters": {}})
    message = _error(response, 501)
    assert message.startswith("unsupported: models register themselves")
    assert "model_a" in message


def test_wrong_methods_and_unknown_paths(client: TestClient) -> None:
    wrong = client.delete("/v2/models/model_b/stats")
    assert "use GET" in _error(wrong, 405)
    assert wrong.headers["allow"] == "GET"
    assert "use POST" in _error(client.get("/v2/repository/models/model_a/load"), 405)
    assert "/v2/repository/index" in _error(client.get("/v2/repository/nothing"), 404)
