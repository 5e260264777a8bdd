"""Every /v2 path at the HTTP level (what curl sees): statuses, content types, bodies.

Runs against ``OIP_BASE_URL`` when set (a real stack), else against the gateway app with fakes
behind it (see conftest.py).
"""

import json
import struct
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.oip.target import Target

SETOSA = [5.1, 3.5, 1.4, 0.2]


@pytest.fixture
def http(target: Target) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=target.base_url, timeout=30.0) as client:
        yield client


def _error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert isinstance(body["error"], str), body
    return str(body["error"])


def _features(**changes: Any) -> dict[str, Any]:
    return {"name": "features", "shape": [4], "datatype": "FP64", "data": SETOSA, **changes}


def test_server_paths(http: httpx.Client) -> None:
    assert http.get("/v2").json()["extensions"] == [
        "binary_tensor_data",
        "statistics",
        "model_configuration",
        "model_repository",
    ]
    assert http.get("/v2/health/live").json() == {"live": True}
    assert http.get("/v2/health/ready").json() == {"ready": True}


def test_model_paths_with_and_without_a_version(http: httpx.Client, target: Target) -> None:
    metadata = http.get(f"/v2/models/{target.model_b}").json()
    version = metadata["versions"][0]
    assert metadata["platform"] == "conveyor_protobuf"
    assert http.get(f"/v2/models/{target.model_b}/versions/{version}").json()["inputs"] == [
        {"name": "features", "datatype": "FP64", "shape": [-1]}
    ]
    assert http.get(f"/v2/models/{target.model_b}/ready").json() == {
        "name": target.model_b,
        "ready": True,
    }
    assert http.get(f"/v2/models/{target.model_b}/versions/{version}/ready").status_code == 200


def test_infer_json_with_and_without_a_version(http: httpx.Client, target: Target) -> None:
    version = http.get(f"/v2/models/{target.model_b}").json()["versions"][0]
    for path in (
        f"/v2/models/{target.model_b}/infer",
        f"/v2/models/{target.model_b}/versions/{version}/infer",
    ):
        response = http.post(path, json={"id": "x1", "inputs": [_features()]})
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["model_name"], body["id"]) == (target.model_b, "x1")
        outputs = {o["name"]: o for o in body["outputs"]}
        assert outputs["label"] == {
            "name": "label",
            "datatype": "BYTES",
            "shape": [1],
            "data": ["setosa"],
        }
        assert outputs["probabilities"]["shape"] == [3]
    assert body["model_version"] == version


def test_infer_binary_in_and_out(http: httpx.Client, target: Target) -> None:
    raw = struct.pack("<4f", *SETOSA)
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "features",
                    "shape": [1, 4],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": len(raw)},
                }
            ],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    response = http.post(
        f"/v2/models/{target.model_b}/infer",
        content=header + raw,
        headers={
            "Inference-Header-Content-Length": str(len(header)),
            "Content-Type": "application/octet-stream",
        },
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    length = int(response.headers["inference-header-content-length"])
    head = json.loads(response.content[:length])
    sizes = [o["parameters"]["binary_data_size"] for o in head["outputs"]]
    assert length + sum(sizes) == len(response.content)
    label = response.content[length : length + sizes[0]]
    assert label == struct.pack("<I", 6) + b"setosa"
    probabilities = struct.unpack("<3d", response.content[length + sizes[0] :][: sizes[1]])
    assert abs(sum(probabilities) - 1.0) < 1e-6


def test_wrong_datatype_is_400(http: httpx.Client, target: Target) -> None:
    request = {"inputs": [_features(datatype="INT32", data=[5, 3, 1, 0])]}
    message = _error(http.post(f"/v2/models/{target.model_b}/infer", json=request), 400)
    assert "expects FP64" in message


def test_unknown_version_is_404(http: httpx.Client, target: Target) -> None:
    _error(http.get(f"/v2/models/{target.model_b}/versions/999999"), 404)
    _error(http.get(f"/v2/models/{target.model_b}/versions/999999/ready"), 404)
    request = {"inputs": [_features()]}
    _error(http.post(f"/v2/models/{target.model_b}/versions/999999/infer", json=request), 404)


def test_unknown_model_is_404(http: httpx.Client) -> None:
    assert "no_such_model" in _error(http.get("/v2/models/no_such_model"), 404)
    _error(http.post("/v2/models/no_such_model/infer", json={"inputs": []}), 404)


def test_bad_bodies_are_400(http: httpx.Client, target: Target) -> None:
    path = f"/v2/models/{target.model_a}/infer"
    assert "not JSON" in _error(http.post(path, content=b"{oops"), 400)
    headers = {"Inference-Header-Content-Length": "999"}
    assert "Inference-Header-Content-Length" in _error(
        http.post(path, content=b"{}", headers=headers), 400
    )
    unknown = {"inputs": [{"name": "dta", "shape": [1], "datatype": "BYTES", "data": ["x"]}]}
    assert "unknown input 'dta'" in _error(http.post(path, json=unknown), 400)


def test_unknown_paths_and_methods(http: httpx.Client, target: Target) -> None:
    assert "no such path" in _error(http.get(f"/v2/models/{target.model_a}/trace/setting"), 404)
    response = http.get(f"/v2/models/{target.model_a}/infer")
    _error(response, 405)
    assert response.headers["allow"] == "POST"
