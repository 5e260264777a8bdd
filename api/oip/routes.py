"""The Open Inference Protocol (KServe v2) REST API of the gateway, under ``/v2``.

Errors on every ``/v2`` path, unknown paths included, are ``{"error": "<message>"}`` (the
protocol's error object, which tritonclient reads), with the gateway's statuses: a bad request
or a wrong datatype 400, an unknown model or version 404, no live worker or an unreachable
registry 503, a timeout 504, an overloaded gateway 429, a failed model 500; load and unload
501 (the extensions' paths are in ``api.oip.extension_routes``).
"""

import functools
import logging
import uuid
from dataclasses import dataclass
from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel
from starlette.types import Scope

from api.config import Settings
from api.deps import SettingsDep
from api.edge import arrival_of, request_id_of
from api.oip import extension_routes
from api.oip.binary import HEADER_LENGTH
from api.oip.documentation import GENERATE_OPENAPI, GENERATE_STREAM_OPENAPI, INFER_OPENAPI
from api.oip.exceptions import OipError
from api.oip.execute import execute, no_worker, seconds_left
from api.oip.generate import (
    GenerateRequest,
    events,
    generate_response,
    parse_generate,
    result_fields,
)
from api.oip.infer import decode_inputs, infer_options, parse_body, render_response, wanted_outputs
from api.oip.ports import Catalog, CatalogDep, Dispatcher, DispatcherDep, ModelView
from api.oip.tensors import mapping_for
from api.pieces import client_gone, sse_answer
from api.protocol_errors import (
    ProtocolRoute,
    answer_unknown_paths,
    error_responses,
    failure_of,
)

logger = logging.getLogger(__name__)

SERVER_NAME: Final = "conveyor"
EXTENSIONS: Final = (
    "binary_tensor_data",
    "statistics",
    "model_configuration",
    "model_repository",
)
"""The protocol extensions the gateway implements (``GET /v2``)."""

PLATFORM: Final = "conveyor_protobuf"
"""The ``platform`` of every model: a Conveyor worker speaking protobuf (information only)."""


def oip_error(exc: Exception) -> JSONResponse:
    """The protocol's error answer for any exception raised on a ``/v2`` path."""
    failure = failure_of(exc, (OipError,), api="a v2")
    return JSONResponse(
        status_code=failure.status, content={"error": failure.message}, headers=failure.headers
    )


def error_object(exc: Exception) -> dict[str, Any]:
    """The protocol's error object for ``exc`` (``{"error": "<message>"}``), as a stream's
    last event carries it."""
    return {"error": failure_of(exc, (OipError,), api="a v2").message}


class OipRoute(ProtocolRoute):
    """A route whose every error is answered as ``{"error": "<message>"}``."""

    @staticmethod
    def answer(exc: Exception) -> Response:
        """The protocol's error answer."""
        return oip_error(exc)


class OipErrorBody(BaseModel):
    """The protocol's error object: one message."""

    error: str


ERROR_RESPONSES = error_responses(
    OipErrorBody,
    {
        400: "A malformed request or tensor (datatype, shape, data)",
        404: "Unknown model, version or path",
        415: "A Content-Type other than JSON",
    },
)
"""Every error a v2 path can answer, documented once for all of them."""

router = APIRouter(
    prefix="/v2",
    tags=["open inference protocol (v2)"],
    route_class=OipRoute,
    responses=ERROR_RESPONSES,
)
# Statistics, configuration, repository: before /models/{model}, which would take "stats".
extension_routes.install(router, OipErrorBody)


@router.get("")
async def server_metadata(request: Request) -> dict[str, Any]:
    """Server metadata: name, version, and the extensions implemented."""
    return {"name": SERVER_NAME, "version": request.app.version, "extensions": list(EXTENSIONS)}


@router.get("/health/live")
async def server_live() -> dict[str, bool]:
    """The gateway process is up."""
    return {"live": True}


@router.get("/health/ready")
async def server_ready(catalog: CatalogDep, dispatcher: DispatcherDep) -> JSONResponse:
    """The gateway can serve: RabbitMQ, Redis and the registry answer (else 503)."""
    checks = {**await dispatcher.ready(), "registry": await catalog.ping()}
    failing = sorted(name for name, ok in checks.items() if not ok)
    if failing:
        body = {"ready": False, "error": f"not ready: {', '.join(failing)} unreachable"}
        return JSONResponse(status_code=503, content=body)
    return JSONResponse(content={"ready": True})


@router.get("/models/{model}")
@router.get("/models/{model}/versions/{version}")
async def model_metadata(
    model: str, catalog: CatalogDep, version: str | None = None
) -> dict[str, Any]:
    """Model metadata: versions, platform, and the input and output tensors."""
    info = await catalog.get(model, version)
    return {
        "name": info.name,
        "versions": list(info.versions),
        "platform": PLATFORM,
        "inputs": [spec.metadata() for spec in mapping_for(info.request_class.DESCRIPTOR).specs],
        "outputs": [spec.metadata() for spec in mapping_for(info.response_class.DESCRIPTOR).specs],
    }


@router.get("/models/{model}/ready")
@router.get("/models/{model}/versions/{version}/ready")
async def model_ready(model: str, catalog: CatalogDep, version: str | None = None) -> JSONResponse:
    """200 when the model (version) has a live worker, else 503."""
    info = await catalog.get(model, version)
    if not info.alive:
        body = {"name": info.name, "ready": False, "error": no_worker(info)}
        return JSONResponse(status_code=503, content=body)
    return JSONResponse(content={"name": info.name, "ready": True})


@router.post("/models/{model}/infer", openapi_extra=INFER_OPENAPI)
@router.post("/models/{model}/versions/{version}/infer", openapi_extra=INFER_OPENAPI)
async def infer(
    model: str,
    request: Request,
    catalog: CatalogDep,
    dispatcher: DispatcherDep,
    settings: SettingsDep,
    version: str | None = None,
) -> Response:
    """Run the model on the request's input tensors; answer its output tensors (JSON, or JSON
    and binary data when asked). ``api.oip.fast_path`` answers the same requests before the
    router; this route documents the operation."""
    return await run_infer(
        Inference(catalog, dispatcher, settings),
        model,
        version,
        await request.body(),
        request.headers.get(HEADER_LENGTH),
        request.headers.get("content-encoding"),
        request.scope,
    )


@dataclass(frozen=True)
class Inference:
    """What an inference needs of the gateway: its catalog, dispatcher and settings."""

    catalog: Catalog
    dispatcher: Dispatcher
    settings: Settings


async def run_infer(
    gateway: Inference,
    model: str,
    version: str | None,
    body: bytes,
    header_length: str | None,
    content_encoding: str | None,
    scope: Scope,
) -> Response:
    """The answer to an infer request of ``model`` (``version``; None: its default) whose body
    is ``body`` (``header_length``: the binary extension's JSON length header), arrived with
    ``scope``. Raises what the request's errors are (the caller answers them with
    ``oip_error``)."""
    info = await gateway.catalog.get(model, version)
    request_mapping = mapping_for(info.request_class.DESCRIPTOR)
    response_mapping = mapping_for(info.response_class.DESCRIPTOR)
    parsed, binary = parse_body(body, header_length, content_encoding)
    settings = gateway.settings
    options = infer_options(
        parsed.parameters, parsed.id, settings.default_timeout, settings.max_timeout
    )
    wanted = wanted_outputs(parsed.outputs, response_mapping.specs, options.binary_output)
    outcome = await execute(
        info,
        gateway.dispatcher,
        decode_inputs(parsed, binary, request_mapping.declared),
        options,
        arrival=arrival_of(scope),
        request_id=options.request_id,
    )
    return render_response(
        model_name=info.name,
        model_version=info.version,
        request_id=options.request_id,
        outputs=outcome.outputs,
        wanted=wanted,
        batched=outcome.batched,
    )


@router.post("/models/{model}/generate", openapi_extra=GENERATE_OPENAPI)
@router.post("/models/{model}/versions/{version}/generate", openapi_extra=GENERATE_OPENAPI)
async def generate(
    model: str,
    request: Request,
    catalog: CatalogDep,
    dispatcher: DispatcherDep,
    settings: SettingsDep,
    version: str | None = None,
) -> JSONResponse:
    """The generate extension: the model's request fields in, its response fields out
    (``api.oip.generate``)."""
    info = await catalog.get(model, version)
    asked = await _generate_request(request, info, settings)
    seconds = seconds_left(info, asked.options.timeout, arrival_of(request.scope))
    result = await dispatcher.run(
        info,
        asked.payload,
        seconds=seconds,
        priority=asked.options.priority,
        request_id=asked.options.request_id,
    )
    return JSONResponse(generate_response(result_fields(result, info), info))


@router.post(
    "/models/{model}/generate_stream",
    openapi_extra=GENERATE_STREAM_OPENAPI,
    response_class=StreamingResponse,
)
@router.post(
    "/models/{model}/versions/{version}/generate_stream",
    openapi_extra=GENERATE_STREAM_OPENAPI,
    response_class=StreamingResponse,
)
async def generate_stream(
    model: str,
    request: Request,
    catalog: CatalogDep,
    dispatcher: DispatcherDep,
    settings: SettingsDep,
    version: str | None = None,
) -> StreamingResponse:
    """The generate extension in pieces: one Server-Sent Event ``data: {...}`` per piece the
    model yields; an error before the first piece is a plain error answer, after it a last
    ``data: {"error": ...}`` event. A client that goes away stops the generation."""
    info = await catalog.get(model, version)
    asked = await _generate_request(request, info, settings)
    seconds = seconds_left(info, asked.options.timeout, arrival_of(request.scope))
    items = dispatcher.stream(
        info,
        asked.payload,
        seconds=seconds,
        priority=asked.options.priority,
        request_id=asked.options.request_id,
    )
    return await sse_answer(
        items,
        functools.partial(events, info=info, error_body=error_object),
        model=info.name,
        gone=client_gone(request.receive),
    )


async def _generate_request(
    request: Request, info: ModelView, settings: Settings
) -> GenerateRequest:
    return parse_generate(
        await request.body(),
        info,
        request_id=request_id_of(request.scope) or uuid.uuid4().hex,
        default_timeout=settings.default_timeout,
        max_timeout=settings.max_timeout,
        max_depth=settings.max_json_depth,
    )


answer_unknown_paths(
    router,
    "the v2 API has /v2, /v2/health/live, /v2/health/ready, "
    "/v2/models/{name}[/versions/{version}] and its /ready, /infer, /generate, "
    "/generate_stream, /stats and /config, /v2/models/stats, /v2/repository/index and "
    "/v2/repository/models/{name}/load and /unload",
    bare=True,
)
