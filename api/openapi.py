"""The gateway's OpenAPI document: what its routes declare, and an operation per registered model.

``POST /predict/{model}`` takes any model's request message, so its own schema can only say
"an object". The document therefore adds, for each model the registry knows, an operation of
its own, ``POST /predict/<name>``, whose request and response bodies are the JSON Schemas of
the model's messages (``api.json_schema``: exactly what the gateway accepts and writes). The
two describe one route: the generic operation stays for clients that name the model at run
time.

Models register at any time, so the document is built from the catalog's current view (one
registry listing, one description per version) when asked for, and kept ``ttl`` seconds; a
model or version that registers appears in the next document. While the registry cannot be
reached, the last models known are documented (none before the first listing).

A model whose versions have different schemas gets the ``anyOf`` of them, each titled with its
versions (``GET /models/{model}/versions/{v}`` has each version's own). The ``timeout``
parameter's range is the gateway's (``MIN_TIMEOUT``, ``MAX_TIMEOUT``).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, cast

import orjson
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message

from api.catalog import ModelCatalog
from api.config import Settings
from api.exceptions import GatewayError
from api.json_schema import Direction, JsonSchema, message_schemas, standalone_schema
from api.schema_check import compile_schema

__all__ = ["GENERIC_PREDICT", "LiveDocument", "ModelSchemas", "VersionSchemas", "document"]

logger = logging.getLogger(__name__)

GENERIC_PREDICT: Final = "/predict/{model}"
"""The path of the operation every model's own one is derived from."""

_REF: Final = "#/components/schemas/{name}"


@dataclass(frozen=True)
class VersionSchemas:
    """The request and response message types some versions of a model share."""

    versions: tuple[str, ...]
    request: Descriptor
    response: Descriptor


@dataclass(frozen=True)
class ModelSchemas:
    """What the document says of one registered model: its schemas, by version (the default
    version's first), and an example request that fits them (or None)."""

    name: str
    schemas: tuple[VersionSchemas, ...]
    example: dict[str, Any] | None = None


def _component(model: str, versions: VersionSchemas, direction: Direction) -> Callable[[str], str]:
    """Component names unique per model, version and side: ``model_b.1.pkg.Msg-input``."""
    return lambda full_name: f"{model}.{versions.versions[0]}.{full_name}-{direction.value}"


def _body_schema(
    model: ModelSchemas, direction: Direction, components: dict[str, JsonSchema]
) -> JsonSchema:
    """The model's message schema on one side (adding its definitions to ``components``)."""
    alternatives: list[JsonSchema] = []
    for versions in model.schemas:
        descriptor = versions.request if direction is Direction.READ else versions.response
        schemas = message_schemas(
            descriptor,
            direction,
            name=_component(model.name, versions, direction),
            ref_template=_REF,
        )
        components.update(schemas.definitions)
        alternatives.append({"$ref": _REF.format(name=schemas.root)})
    if len(alternatives) == 1:
        return alternatives[0]
    return {
        "anyOf": [
            {**reference, "title": f"version {', '.join(versions.versions)}"}
            for reference, versions in zip(alternatives, model.schemas, strict=True)
        ]
    }


def _set_timeout_range(operation: dict[str, Any], settings: Settings) -> None:
    for parameter in operation.get("parameters", []):
        if parameter.get("name") == "timeout" and parameter.get("in") == "query":
            parameter["schema"] = {
                "type": "number",
                "minimum": settings.min_timeout,
                "maximum": settings.max_timeout,
            }
            parameter["description"] = (
                "Seconds to wait for the result (sync mode), counted from arrival; from "
                f"{settings.min_timeout:g} to {settings.max_timeout:g} (MIN_TIMEOUT, "
                f"MAX_TIMEOUT); default {settings.default_timeout:g} (DEFAULT_TIMEOUT)."
            )


def _model_operation(
    generic: dict[str, Any], model: ModelSchemas, components: dict[str, JsonSchema], taken: set[str]
) -> dict[str, Any]:
    """``POST /predict/<name>``: the generic operation with the model's exact bodies."""
    operation = copy.deepcopy(generic)
    operation_id = f"predict_{model.name}"
    while operation_id in taken:
        operation_id += "_"
    taken.add(operation_id)
    versions = "; ".join(
        f"{', '.join(group.versions)}: {group.request.full_name} -> {group.response.full_name}"
        for group in model.schemas
    )
    operation.update(
        operationId=operation_id,
        summary=f"Run {model.name}",
        description=(
            f"Run model `{model.name}` on its request message; answer its response message "
            f"(or 202 with a task id, with mode=async). Versions: {versions}."
        ),
        parameters=[p for p in operation.get("parameters", []) if p.get("in") != "path"],
    )
    request: dict[str, Any] = {"schema": _body_schema(model, Direction.READ, components)}
    if model.example is not None:
        request["example"] = model.example
    operation["requestBody"] = {
        "required": True,
        "description": f"{model.name}'s request message in the protobuf JSON mapping.",
        "content": {"application/json": request},
    }
    responses = operation.setdefault("responses", {})
    content: dict[str, Any] = {
        "application/json": {"schema": _body_schema(model, Direction.WRITE, components)}
    }
    streamed = responses.get("200", {}).get("content", {}).get("text/event-stream")
    if streamed is not None:  # stream=true: the generic operation's events
        content["text/event-stream"] = streamed
    responses["200"] = {
        "description": f"{model.name}'s response message in the protobuf JSON mapping "
        "(fields under their .proto names, every field without presence written); with "
        "stream=true, Server-Sent Events: its pieces, each such a message, then done or error.",
        "content": content,
    }
    if "404" in responses:
        responses["404"] = {**responses["404"], "description": "Unknown version"}
    return operation


TASK_PATH: Final = "/tasks/{task_id}"


def _task_links(paths: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI links from a 202 (a task accepted) to reading and cancelling that task."""
    links: dict[str, Any] = {}
    for method, name in (("get", "ReadTask"), ("delete", "CancelTask")):
        operation_id = paths.get(TASK_PATH, {}).get(method, {}).get("operationId")
        if operation_id is not None:
            links[name] = {
                "operationId": operation_id,
                "parameters": {"task_id": "$response.body#/task_id"},
            }
    return links


def document(
    base: dict[str, Any], models: Sequence[ModelSchemas], settings: Settings
) -> dict[str, Any]:
    """The OpenAPI document: ``base`` (the routes' own, left unchanged) with the gateway's
    timeout range and one ``POST /predict/<name>`` per model, placed after the generic one."""
    result = copy.deepcopy(base)
    old_paths: dict[str, Any] = result.get("paths", {})
    components = result.setdefault("components", {}).setdefault("schemas", {})
    taken = {
        str(operation.get("operationId"))
        for item in old_paths.values()
        for operation in item.values()
        if isinstance(operation, dict)
    }
    links = _task_links(old_paths)
    paths: dict[str, Any] = {}
    for path, item in old_paths.items():
        paths[path] = item
        if path.startswith("/predict/"):
            for operation in item.values():
                _set_timeout_range(operation, settings)
                accepted = operation.get("responses", {}).get("202")
                if accepted is not None and links:
                    accepted["links"] = links
        if path != GENERIC_PREDICT or "post" not in item:
            continue
        for model in sorted(models, key=lambda m: m.name):
            operation = _model_operation(item["post"], model, components, taken)
            paths[f"/predict/{model.name}"] = {"post": operation}
    result["paths"] = paths
    return result


def _descriptor(message: type[Message]) -> Descriptor:
    return cast(Descriptor, message.DESCRIPTOR)


def _fits(example: dict[str, Any], request: Descriptor) -> bool:
    return compile_schema(standalone_schema(request, Direction.READ))(example) is None


async def _model_schemas(catalog: ModelCatalog, name: str) -> ModelSchemas | None:
    """A model's schemas by version, the default version's first, from the registry (None if
    it left meanwhile); its example request if that fits them."""
    try:
        default = await catalog.describe(name)
    except GatewayError as e:  # gone meanwhile, or the registry went away
        logger.info("model %s left out of the OpenAPI document: %s", name, e)
        return None
    others = [v.version for v in default.versions if v.version != default.version]
    try:
        details = [default, *await asyncio.gather(*(catalog.describe(name, v) for v in others))]
    except GatewayError as e:
        logger.info("other versions of %s left out of the OpenAPI document: %s", name, e)
        details = [default]
    groups: dict[tuple[str, str, str, str], list[str]] = {}
    classes: dict[tuple[str, str, str, str], tuple[Descriptor, Descriptor]] = {}
    for detail in details:
        key = (
            detail.request.descriptor_set,
            detail.request.type,
            detail.response.descriptor_set,
            detail.response.type,
        )
        if key not in classes:
            try:
                request = _descriptor(catalog.message_class(detail.request))
                response = _descriptor(catalog.message_class(detail.response))
            except GatewayError as e:
                logger.warning("%s %s left out of the document: %s", name, detail.version, e)
                continue
            classes[key] = (request, response)
        groups.setdefault(key, []).append(detail.version)
    if not groups:
        return None
    schemas = tuple(
        VersionSchemas(tuple(versions), *classes[key]) for key, versions in groups.items()
    )
    example: dict[str, Any] | None = default.example_request or None
    if example is not None and not _fits(example, schemas[0].request):
        example = None  # never publish an example the gateway would refuse
    return ModelSchemas(name, schemas, example)


class LiveDocument:
    """The document, built from the catalog's current view at most every ``ttl`` seconds.

    ``base`` gives the routes' own document (FastAPI's ``app.openapi``)."""

    def __init__(self, base: Callable[[], dict[str, Any]], ttl: float) -> None:
        self._base = base
        self._ttl = ttl
        self._lock = asyncio.Lock()
        self._rendered: tuple[float, bytes] | None = None
        self._models: list[ModelSchemas] = []

    async def render(self, catalog: ModelCatalog | None, settings: Settings) -> bytes:
        """The document as JSON bytes (fresh within ``ttl`` seconds)."""
        rendered = self._rendered
        if rendered is not None and rendered[0] > time.monotonic():
            return rendered[1]
        async with self._lock:  # one build at a time; the others wait for it
            rendered = self._rendered
            if rendered is not None and rendered[0] > time.monotonic():
                return rendered[1]
            if catalog is not None:
                await self._refresh(catalog)
            body = orjson.dumps(document(self._base(), self._models, settings))
            self._rendered = (time.monotonic() + self._ttl, body)
            return body

    async def _refresh(self, catalog: ModelCatalog) -> None:
        try:
            listed = await catalog.list()
        except GatewayError as e:
            logger.warning("the OpenAPI document keeps the models it knew: %s", e)
            return
        found = await asyncio.gather(*(_model_schemas(catalog, summary.name) for summary in listed))
        self._models = [model for model in found if model is not None]
