"""The OpenAPI document: an operation per registered model with its exact schemas, rebuilt as
models register (api.openapi), served at /openapi.json (api.routes.docs); 405s list every
method a path serves (conveyor.web.allowed_methods)."""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any, cast

import jsonschema_rs
import pytest
from fastapi.testclient import TestClient
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message

from api.catalog import ModelCatalog
from api.config import Settings
from api.exceptions import ModelNotFound, RegistryUnavailable
from api.main import create_app
from api.openapi import LiveDocument, ModelSchemas, VersionSchemas, document
from conveyor.descriptors import file_descriptor_set
from conveyor.registry_api import MessageSchema, ModelDetail, ModelSummary, VersionSummary
from proto import model_a_pb2, model_b_pb2

SETTINGS = Settings(min_timeout=0.5, default_timeout=5.0, max_timeout=20.0)


def _descriptor(message: type[Message]) -> Descriptor:
    return cast(Descriptor, message.DESCRIPTOR)


def _versions(versions: tuple[str, ...], request: type[Message], response: type[Message]) -> Any:
    return VersionSchemas(versions, _descriptor(request), _descriptor(response))


MODEL_B = ModelSchemas(
    "model_b",
    (_versions(("1",), model_b_pb2.ModelBRequest, model_b_pb2.ModelBResponse),),
    example={"features": [5.1, 3.5, 1.4, 0.2]},
)
MODEL_A = ModelSchemas(
    "model_a",
    (
        _versions(("2", "1"), model_a_pb2.ModelARequest, model_a_pb2.ModelAResponse),
        _versions(("0",), model_b_pb2.ModelBRequest, model_b_pb2.ModelBResponse),
    ),
)


def _base() -> dict[str, Any]:
    return create_app(SETTINGS).openapi()


def _resolve(root: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    resolved: dict[str, Any] = root["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return resolved


def _body(root: dict[str, Any], path: str) -> dict[str, Any]:
    operation = root["paths"][path]["post"]
    return _resolve(root, operation["requestBody"]["content"]["application/json"]["schema"])


def test_each_model_gets_its_own_operation_after_the_generic_one() -> None:
    doc = document(_base(), [MODEL_B, MODEL_A], SETTINGS)
    paths = list(doc["paths"])
    generic = paths.index("/predict/{model}")
    assert paths[generic + 1 : generic + 3] == ["/predict/model_a", "/predict/model_b"]
    operation = doc["paths"]["/predict/model_b"]["post"]
    assert operation["operationId"] == "predict_model_b"
    names = [p["name"] for p in operation["parameters"]]
    assert names == [
        "mode",
        "timeout",
        "version",
        "priority",
        "Idempotency-Key",
        "max_retries",
        "callback_url",
        "stream",
        "Callback-URL",
    ]
    assert operation["requestBody"]["required"] is True
    assert set(operation["responses"]["200"]["content"]) == {
        "application/json",
        "text/event-stream",
    }
    ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))


def test_model_b_features_are_an_array_of_numbers_and_its_answer_is_exact() -> None:
    doc = document(_base(), [MODEL_B], SETTINGS)
    body = _body(doc, "/predict/model_b")
    assert body["properties"]["features"]["items"] == {"type": "number", "format": "double"}
    assert "array" in body["properties"]["features"]["type"]
    assert body["additionalProperties"] is False
    content = doc["paths"]["/predict/model_b"]["post"]["requestBody"]["content"]
    assert content["application/json"]["example"] == {"features": [5.1, 3.5, 1.4, 0.2]}
    answer = doc["paths"]["/predict/model_b"]["post"]["responses"]["200"]["content"]
    response = _resolve(doc, answer["application/json"]["schema"])
    assert response["required"] == ["label", "probabilities"]
    assert "TaskAccepted" in str(doc["paths"]["/predict/model_b"]["post"]["responses"]["202"])


def test_the_document_is_valid_json_schema_where_it_holds_schemas() -> None:
    doc = document(_base(), [MODEL_A, MODEL_B], SETTINGS)
    for schema in doc["components"]["schemas"].values():
        jsonschema_rs.meta.validate(schema)


def test_versions_with_other_schemas_are_alternatives_titled_by_version() -> None:
    doc = document(_base(), [MODEL_A], SETTINGS)
    operation = doc["paths"]["/predict/model_a"]["post"]
    alternatives = operation["requestBody"]["content"]["application/json"]["schema"]["anyOf"]
    assert [a["title"] for a in alternatives] == ["version 2, 1", "version 0"]
    assert "model_a.2.conveyor.v1.ModelARequest-input" in doc["components"]["schemas"]
    assert "model_a.0.conveyor.v1.ModelBRequest-input" in doc["components"]["schemas"]
    assert "example" not in operation["requestBody"]["content"]["application/json"]


def test_timeout_range_is_the_gateways_and_tasks_are_linked() -> None:
    doc = document(_base(), [MODEL_B], SETTINGS)
    for path in ("/predict/{model}", "/predict/model_b"):
        operation = doc["paths"][path]["post"]
        (timeout,) = [p for p in operation["parameters"] if p["name"] == "timeout"]
        assert (timeout["schema"]["minimum"], timeout["schema"]["maximum"]) == (0.5, 20.0)
        links = operation["responses"]["202"]["links"]
        assert links["ReadTask"]["parameters"] == {"task_id": "$response.body#/task_id"}
        assert (
            links["CancelTask"]["operationId"]
            == doc["paths"]["/tasks/{task_id}"]["delete"]["operationId"]
        )


def test_the_base_document_is_left_unchanged() -> None:
    base = _base()
    before = repr(base)
    document(base, [MODEL_A, MODEL_B], SETTINGS)
    assert repr(base) == before


def test_infer_documents_its_body_as_required() -> None:
    infer = _base()["paths"]["/v2/models/{model}/infer"]["post"]
    assert infer["requestBody"]["required"] is True
    assert set(infer["requestBody"]["content"]) == {"application/json", "application/octet-stream"}
    assert "$ref" not in str(infer["requestBody"])


# --- the live document over a catalog ------------------------------------------------------


def _schema(message: type[Message]) -> MessageSchema:
    descriptors = file_descriptor_set(_descriptor(message))
    return MessageSchema(
        type=_descriptor(message).full_name,
        fields=[],
        descriptor_set=base64.b64encode(descriptors).decode(),
    )


class FakeCatalog:
    """Models as the registry would describe them; message classes from the schemas."""

    def __init__(self) -> None:
        self.models: dict[str, tuple[type[Message], type[Message]]] = {}
        self.down = False
        self.listings = 0

    async def list(self) -> list[ModelSummary]:
        self.listings += 1
        if self.down:
            raise RegistryUnavailable("registry down")
        return [self._summary(name) for name in self.models]

    def _summary(self, name: str) -> ModelSummary:
        version = VersionSummary(version="1", status="alive", instances=1, queue="q")
        return ModelSummary(name=name, **version.model_dump(), versions=[version])

    async def describe(self, name: str, version: str | None = None) -> ModelDetail:
        if name not in self.models:
            raise ModelNotFound(f"unknown model {name!r}", model=name)
        request, response = self.models[name]
        return ModelDetail(
            **self._summary(name).model_dump(),
            request=_schema(request),
            response=_schema(response),
            example_request={"features": "not a list"},  # does not fit: left out
        )

    def message_class(self, schema: MessageSchema) -> type[Message]:
        return {
            "conveyor.v1.ModelARequest": model_a_pb2.ModelARequest,
            "conveyor.v1.ModelAResponse": model_a_pb2.ModelAResponse,
            "conveyor.v1.ModelBRequest": model_b_pb2.ModelBRequest,
            "conveyor.v1.ModelBResponse": model_b_pb2.ModelBResponse,
        }[schema.type]


@pytest.fixture
def client() -> TestClient:
    app = create_app(Settings(registry_cache_seconds=0.2))
    app.state.catalog = FakeCatalog()
    return TestClient(app)  # no lifespan: nothing connects


def _paths(client: TestClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    paths: dict[str, Any] = response.json()["paths"]
    return paths


def test_a_model_that_registers_appears_in_the_next_document(client: TestClient) -> None:
    catalog: FakeCatalog = client.app.state.catalog  # type: ignore[attr-defined]
    assert "/predict/model_b" not in _paths(client)
    catalog.models["model_b"] = (model_b_pb2.ModelBRequest, model_b_pb2.ModelBResponse)
    assert "/predict/model_b" not in _paths(client)  # within the cache's time, the same
    time.sleep(0.25)
    paths = _paths(client)
    assert "/predict/model_b" in paths
    body = paths["/predict/model_b"]["post"]["requestBody"]["content"]["application/json"]
    assert "example" not in body


def test_while_the_registry_is_away_the_known_models_stay(client: TestClient) -> None:
    catalog: FakeCatalog = client.app.state.catalog  # type: ignore[attr-defined]
    catalog.models["model_a"] = (model_a_pb2.ModelARequest, model_a_pb2.ModelAResponse)
    assert "/predict/model_a" in _paths(client)
    catalog.down = True
    time.sleep(0.25)
    assert "/predict/model_a" in _paths(client)
    assert catalog.listings == 2


def test_docs_and_redoc_pages_point_at_the_live_document(client: TestClient) -> None:
    for page in ("/docs", "/redoc"):
        response = client.get(page)
        assert response.status_code == 200
        assert "/openapi.json" in response.text
    assert client.get("/docs/oauth2-redirect").status_code == 200


@pytest.mark.asyncio
async def test_concurrent_renders_share_one_build() -> None:
    catalog = cast(ModelCatalog, FakeCatalog())
    live = LiveDocument(_base, ttl=60)
    first, second = await asyncio.gather(
        live.render(catalog, SETTINGS), live.render(catalog, SETTINGS)
    )
    assert first is second
    assert await live.render(catalog, SETTINGS) is first
    assert cast(FakeCatalog, catalog).listings == 1


# --- 405: every method the path serves ----------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("OPTIONS", "/tasks/abc", "DELETE, GET"),
        ("PUT", "/tasks/abc", "DELETE, GET"),
        ("GET", "/predict/model_b", "POST"),
        ("POST", "/healthz", "GET"),
        ("DELETE", "/openapi.json", "GET"),
        ("GET", "/v2/models/m/infer", "POST"),
        ("PATCH", "/v2/models/m", "GET"),
    ],
)
def test_a_405_allows_every_method_of_the_path_and_says_so_in_json(
    client: TestClient, method: str, path: str, allowed: str
) -> None:
    response = client.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allowed
    error = response.json()["error"]
    message = error if isinstance(error, str) else error["message"]
    assert f"(use {allowed})" in message
