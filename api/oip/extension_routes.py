"""The protocol's extensions over REST, in Triton's JSON shapes (``tritonclient.http`` reads them):

- statistics: ``GET /v2/models/stats`` (every model), ``/v2/models/{m}/stats`` (every version),
  ``/v2/models/{m}/versions/{v}/stats``;
- model configuration: ``GET /v2/models/{m}[/versions/{v}]/config``;
- model repository: ``POST`` (or ``GET``) ``/v2/repository/index``, optional body
  ``{"ready": true}`` for the ready versions only; ``POST /v2/repository/models/{m}/load`` and
  ``/unload`` answer 501: models register themselves, the gateway loads nothing.

The values come from ``app.state.extensions`` (an ``api.oip.extensions.ExtensionsView``); this
module only renders them. ``install`` adds the paths to the v2 router, so their errors are its
``{"error": "<message>"}``.
"""

import json
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from api.oip.datatypes import config_data_type
from api.oip.exceptions import OipError
from api.oip.extensions import (
    Duration,
    ExtensionsView,
    ModelConfiguration,
    VersionPolicy,
    VersionStatistics,
)
from api.oip.tensors import TensorSpec

__all__ = ["UNSUPPORTED_STATUS", "install"]

UNSUPPORTED_STATUS: Final = 501
"""The status of load and unload: the gateway does not implement them (Not Implemented)."""


async def get_extensions(request: Request) -> ExtensionsView:
    """The extensions of the app serving the request."""
    extensions: ExtensionsView = request.app.state.extensions
    return extensions


ExtensionsDep = Annotated[ExtensionsView, Depends(get_extensions)]


async def all_statistics(extensions: ExtensionsDep) -> dict[str, Any]:
    """Statistics of every version of every model (Triton's statistics extension)."""
    return {"model_stats": [_stat(s) for s in await extensions.statistics()]}


async def model_statistics(
    model: str, extensions: ExtensionsDep, version: str | None = None
) -> dict[str, Any]:
    """Statistics of a model's versions, or of one version: request counts and the time spent
    queued and computing, as the workers report them."""
    return {"model_stats": [_stat(s) for s in await extensions.statistics(model, version)]}


async def model_config(
    model: str, extensions: ExtensionsDep, version: str | None = None
) -> dict[str, Any]:
    """The model's configuration: platform, tensors, max batch size, version policy."""
    return _config(await extensions.configuration(model, version))


async def repository_index(
    request: Request, extensions: ExtensionsDep, ready: bool | None = None
) -> list[dict[str, str]]:
    """Every registered model version and its state (``READY`` or ``UNAVAILABLE``); with
    ``{"ready": true}`` (or ``?ready=true``) only the ready ones."""
    asked = _ready_in(await request.body())
    ready_only = bool(ready) if asked is None else asked
    entries = await extensions.repository_index(ready_only=ready_only)
    return [
        {"name": e.name, "version": e.version, "state": e.state, "reason": e.reason}
        for e in entries
    ]


async def load_or_unload(model: str) -> JSONResponse:
    """Not supported: a model is served while its workers run (they register themselves)."""
    message = (
        f"unsupported: models register themselves; start or stop the workers of {model!r} to "
        "load or unload it"
    )
    return JSONResponse(status_code=UNSUPPORTED_STATUS, content={"error": message})


_INDEX_BODY: Final[dict[str, Any]] = {
    "requestBody": {
        "required": False,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {"ready": {"type": "boolean", "default": False}},
                }
            }
        },
    }
}


def install(router: APIRouter, error_body: type[BaseModel]) -> None:
    """Add the extensions' paths to the v2 ``router``, documenting ``error_body`` as the body
    of load's and unload's 501. Call it before the router's ``/models/{model}`` paths:
    ``/models/stats`` is the statistics, not a model named ``stats`` (as in Triton)."""
    router.add_api_route("/models/stats", all_statistics, methods=["GET"])
    for path in ("/models/{model}", "/models/{model}/versions/{version}"):
        router.add_api_route(f"{path}/stats", model_statistics, methods=["GET"])
        router.add_api_route(f"{path}/config", model_config, methods=["GET"])
    for method in ("POST", "GET"):  # a route each: each method its own operation id
        router.add_api_route(
            "/repository/index",
            repository_index,
            methods=[method],
            name=f"repository_index_{method.lower()}",
            openapi_extra=_INDEX_BODY if method == "POST" else None,
        )
    unsupported: dict[int | str, dict[str, Any]] = {
        UNSUPPORTED_STATUS: {
            "model": error_body,
            "description": "Always: models register themselves, nothing is loaded on request",
        }
    }
    for action in ("load", "unload"):
        router.add_api_route(
            f"/repository/models/{{model}}/{action}",
            load_or_unload,
            methods=["POST"],
            responses=unsupported,
            response_model=None,
            summary=f"{action.capitalize()} a model (unsupported)",
        )


def _ready_in(body: bytes) -> bool | None:
    """The ``ready`` of an index request's body; None when there is no body (zero bytes) or it
    leaves ``ready`` out. Anything else must be a JSON object."""
    if not body:
        return None
    try:
        parsed = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise OipError(f"the index request is not JSON: {e}", field="body") from e
    if not isinstance(parsed, dict):
        raise OipError('the index request is a JSON object, e.g. {"ready": true}', field="body")
    if "ready" not in parsed:
        return None
    ready = parsed["ready"]
    if not isinstance(ready, bool):
        raise OipError('"ready" is true or false', field="ready")
    return ready


def _duration(value: Duration) -> dict[str, int]:
    return {"count": value.count, "ns": value.ns}


_NONE: Final = Duration()


def _stat(stats: VersionStatistics) -> dict[str, Any]:
    """Triton's ``$model_stat`` (the response cache's and batch statistics are empty)."""
    return {
        "name": stats.name,
        "version": stats.version,
        "last_inference": stats.last_inference_ms,
        "inference_count": stats.inference_count,
        "execution_count": stats.execution_count,
        "inference_stats": {
            "success": _duration(stats.success),
            "fail": _duration(stats.fail),
            "queue": _duration(stats.queue),
            "compute_input": _duration(stats.compute_input),
            "compute_infer": _duration(stats.compute_infer),
            "compute_output": _duration(stats.compute_output),
            "cache_hit": _duration(_NONE),
            "cache_miss": _duration(_NONE),
        },
        "batch_stats": [],
    }


def _tensor(spec: TensorSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "data_type": config_data_type(spec.datatype),
        "dims": list(spec.shape),
    }


def _policy(policy: VersionPolicy) -> dict[str, Any]:
    if policy.latest is not None:
        return {"latest": {"num_versions": policy.latest}}
    if policy.specific:
        return {"specific": {"versions": list(policy.specific)}}
    return {"all": {}}


def _config(config: ModelConfiguration) -> dict[str, Any]:
    """Triton's model configuration JSON (``ModelConfig`` with its field names)."""
    return {
        "name": config.name,
        "platform": config.platform,
        "backend": config.backend,
        "version_policy": _policy(config.version_policy),
        "max_batch_size": config.max_batch_size,
        "input": [_tensor(spec) for spec in config.inputs],
        "output": [_tensor(spec) for spec in config.outputs],
    }
