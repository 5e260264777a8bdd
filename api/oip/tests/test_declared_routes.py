"""A tensor model (declared tensors) through the /v2 routes of the real gateway app, fakes
behind it: metadata and configuration, JSON and binary data both ways, batches, errors."""

import json
import struct
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.catalog import ModelInfo
from api.oip.tests import declared_pb2
from api.oip.tests.fakes import (
    FakeCatalog,
    FakeDispatcher,
    affine,
    affine_model,
    affine_rows,
    fake_gateway,
    model_b,
)
from conveyor.descriptors import file_descriptor_set, load_pool, message_class
from proto import task_pb2

ROWS = [[1.0, 2.0, 3.0, 4.0], [0.5, 0.0, -1.0, 2.0], [0.0, 0.0, 0.0, 1.0]]


def _mixed() -> ModelInfo:
    """A model whose request and response are ``Mixed``: declared tensors beside ordinary
    fields; it answers its request."""
    pool = load_pool(file_descriptor_set(declared_pb2.Mixed.DESCRIPTOR))
    mixed = message_class(pool, "conveyor.test.oip.Mixed")
    return ModelInfo("mixed", "1", ("1",), 1, mixed, mixed, max_batch_size=8)


def _echo(model: ModelInfo, payload: bytes) -> task_pb2.TaskResult:
    return task_pb2.TaskResult(model=model.name, response=payload)


@pytest.fixture
def client() -> Iterator[TestClient]:
    catalog = FakeCatalog([*affine_model(), _mixed(), *model_b()])
    dispatcher = FakeDispatcher({"affine": affine, "mixed": _echo})
    yield TestClient(fake_gateway(catalog, dispatcher))


def _dispatcher(client: TestClient) -> FakeDispatcher:
    dispatcher: FakeDispatcher = client.app.state.dispatcher  # type: ignore[attr-defined]
    return dispatcher


def _error(response: Any, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == ["error"]
    return str(body["error"])


def _x(rows: list[list[float]], **extra: Any) -> dict[str, Any]:
    return {"name": "x", "shape": [len(rows), 4], "datatype": "FP32", "data": rows, **extra}


def _close(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) and all(abs(p - q) < 1e-5 for p, q in zip(a, b, strict=True))


def test_metadata_has_the_declared_datatypes_and_dims(client: TestClient) -> None:
    meta = client.get("/v2/models/affine").json()
    assert meta["inputs"] == [
        {"name": "x", "datatype": "FP32", "shape": [-1, 4]},
        {"name": "image", "datatype": "UINT8", "shape": [-1, 2, 2, 3]},
    ]
    assert meta["outputs"] == [
        {"name": "y", "datatype": "FP32", "shape": [-1, 2]},
        {"name": "words", "datatype": "BYTES", "shape": [-1]},
    ]


def test_configuration_of_a_batching_tensor_model(client: TestClient) -> None:
    config = client.get("/v2/models/affine/config").json()
    assert config["max_batch_size"] == 2**31 - 1
    assert config["input"] == [
        {"name": "x", "data_type": "TYPE_FP32", "dims": [4]},
        {"name": "image", "data_type": "TYPE_UINT8", "dims": [2, 2, 3]},
    ]
    assert config["output"] == [
        {"name": "y", "data_type": "TYPE_FP32", "dims": [2]},
        {"name": "words", "data_type": "TYPE_STRING", "dims": []},
    ]
    # Beside ordinary fields, the shapes are full and the batch size the workers'.
    mixed = client.get("/v2/models/mixed/config").json()
    assert mixed["max_batch_size"] == 8
    assert mixed["input"][0] == {"name": "grid", "data_type": "TYPE_INT16", "dims": [2, -1]}


def test_a_batch_of_three_in_json(client: TestClient) -> None:
    response = client.post("/v2/models/affine/infer", json={"inputs": [_x(ROWS)]})
    assert response.status_code == 200, response.text
    y, words = response.json()["outputs"]
    assert (y["name"], y["datatype"], y["shape"]) == ("y", "FP32", [3, 2])
    assert _close(y["data"], [v for row in affine_rows(ROWS) for v in row])
    assert words == {
        "name": "words",
        "datatype": "BYTES",
        "shape": [3],
        "data": ["row 0", "row 1", "row 2"],
    }
    request: Any = declared_pb2.Affine.FromString(_dispatcher(client).runs[0].payload)
    assert list(request.x.shape) == [3, 4]
    assert request.x.raw == struct.pack("<12f", *(v for row in ROWS for v in row))
    assert not request.HasField("image")


def test_flat_json_data_and_an_image(client: TestClient) -> None:
    image = {"name": "image", "shape": [1, 2, 2, 3], "datatype": "UINT8", "data": list(range(12))}
    flat = _x(ROWS[:1], data=ROWS[0])
    response = client.post("/v2/models/affine/infer", json={"inputs": [flat, image]})
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][1]["data"] == ["row 0", "image 0: 66"]


def test_binary_bytes_pass_through_both_ways(client: TestClient) -> None:
    raw = struct.pack("<12f", *(v for row in ROWS for v in row))
    header = json.dumps(
        {
            "inputs": [_x(ROWS, data=None, parameters={"binary_data_size": len(raw)})],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    response = client.post(
        "/v2/models/affine/infer",
        content=header + raw,
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert response.status_code == 200, response.text
    request: Any = declared_pb2.Affine.FromString(_dispatcher(client).runs[0].payload)
    assert request.x.raw == raw
    length = int(response.headers["inference-header-content-length"])
    y, words = json.loads(response.content[:length])["outputs"]
    assert (y["shape"], y["parameters"]) == ([3, 2], {"binary_data_size": 24})
    assert words["shape"] == [3]
    values = struct.unpack("<6f", response.content[length : length + 24])
    assert _close(list(values), [v for row in affine_rows(ROWS) for v in row])
    assert response.content[length + 24 :].startswith(struct.pack("<I", 5) + b"row 0")


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (
            {"name": "x", "shape": [3, 5], "datatype": "FP32", "data": [0.0] * 15},
            r"input 'x' has shape [3, 5]; model 'affine' expects [-1, 4] (-1: any size)",
        ),
        (
            {"name": "x", "shape": [4], "datatype": "FP32", "data": [0.0] * 4},
            r"input 'x' has shape [4]; model 'affine' expects [-1, 4]",
        ),
        (
            {"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [0.0] * 4},
            "input 'x' has datatype FP64; model 'affine' expects FP32",
        ),
        (
            {"name": "x", "shape": [2, 4], "datatype": "FP32", "data": [0.0] * 4},
            "input 'x' has shape [2, 4], i.e. 8 elements, but 4 were given",
        ),
        (
            {"name": "image", "shape": [1, 2, 2, 3], "datatype": "UINT8", "data": [256] * 12},
            "out of the range of UINT8",
        ),
    ],
)
def test_wrong_inputs_are_400s_naming_the_tensor(
    client: TestClient, given: dict[str, Any], message: str
) -> None:
    response = client.post("/v2/models/affine/infer", json={"inputs": [given]})
    assert message in _error(response, 400)


def test_binary_data_of_the_wrong_size_is_a_400(client: TestClient) -> None:
    raw = bytes(44)
    header = json.dumps(
        {"inputs": [_x(ROWS, data=None, parameters={"binary_data_size": len(raw)})]}
    ).encode()
    response = client.post(
        "/v2/models/affine/infer",
        content=header + raw,
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert _error(response, 400) == (
        "input 'x': shape [3, 4] holds 12 FP32 elements, 48 bytes, but the data is 44 bytes"
    )


def test_an_output_whose_bytes_do_not_fill_its_shape_is_a_502(client: TestClient) -> None:
    def short(model: ModelInfo, payload: bytes) -> task_pb2.TaskResult:
        response = declared_pb2.AffineResult()
        response.y.shape.extend([2, 2])
        response.y.raw = bytes(12)
        return task_pb2.TaskResult(model=model.name, response=response.SerializeToString())

    _dispatcher(client).responders["affine"] = short
    response = client.post("/v2/models/affine/infer", json={"inputs": [_x(ROWS)]})
    assert "output 'y' of shape [2, 2]" in _error(response, 502)


def test_declared_tensors_keep_their_shapes_beside_a_batch_of_one(client: TestClient) -> None:
    inputs = [
        {"name": "scale", "shape": [1, 1], "datatype": "FP32", "data": [[2.0]]},
        {"name": "grid", "shape": [2, 3], "datatype": "INT16", "data": [[1, 2, 3], [4, 5, 6]]},
    ]
    response = client.post(
        "/v2/models/mixed/infer",
        json={"inputs": inputs, "outputs": [{"name": "scale"}, {"name": "grid"}]},
    )
    assert response.status_code == 200, response.text
    scale, grid = response.json()["outputs"]
    assert (scale["shape"], scale["data"]) == ([1, 1], [2.0])
    assert (grid["shape"], grid["data"]) == ([2, 3], [1, 2, 3, 4, 5, 6])
