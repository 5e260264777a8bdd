"""``GET /models`` and ``GET /models/{name}[/versions/{version}]``: what the registry knows,
with the queues' state."""

from typing import Any

from fastapi import APIRouter

from api.deps import CatalogDep, DispatcherDep
from api.schemas import ModelView
from conveyor.registry_api import ModelDetail, ModelSummary
from conveyor.web import ErrorBody

router = APIRouter(tags=["models"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing or wrong API key (when API_KEYS is set)"},
    503: {"model": ErrorBody, "description": "The registry is unreachable"},
}
_DETAIL_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    404: {"model": ErrorBody, "description": "Unknown model or version"},
    422: {"model": ErrorBody, "description": "Not a model name or version"},
}


async def _view(detail: ModelDetail, dispatcher: DispatcherDep) -> ModelView:
    depths = await dispatcher.queue_depths(detail.name, detail.version)
    return ModelView(
        **detail.model_dump(),
        queued=depths.queued if depths else None,
        dead_letters=depths.dead_letters if depths else None,
    )


@router.get("/models", responses=_ERRORS)
async def list_models(catalog: CatalogDep) -> list[ModelSummary]:
    """List models: name, default version with its status and live instances, every version."""
    return await catalog.list()


@router.get("/models/{model}", responses=_DETAIL_ERRORS, response_model_exclude_none=True)
async def describe_model(model: str, catalog: CatalogDep, dispatcher: DispatcherDep) -> ModelView:
    """Describe a model's default version: status, instances, schemas, an example request,
    queued tasks and dead letters."""
    return await _view(await catalog.describe(model), dispatcher)


@router.get(
    "/models/{model}/versions/{version}",
    responses=_DETAIL_ERRORS,
    response_model_exclude_none=True,
)
async def describe_version(
    model: str, version: str, catalog: CatalogDep, dispatcher: DispatcherDep
) -> ModelView:
    """Describe one version of a model."""
    return await _view(await catalog.describe(model, version), dispatcher)
