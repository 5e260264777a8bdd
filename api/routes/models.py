"""``GET /models`` and ``GET /models/{name}``: the models the registry knows."""

from fastapi import APIRouter

from api.deps import CatalogDep
from conveyor.registry_api import ModelDetail, ModelSummary
from conveyor.web import ErrorBody

router = APIRouter(tags=["models"])


@router.get("/models", response_model_exclude_none=True)
async def list_models(catalog: CatalogDep) -> list[ModelSummary]:
    """List models: name, status (alive/dead), version, live instances, queue."""
    return await catalog.list()


@router.get(
    "/models/{model}",
    responses={404: {"model": ErrorBody, "description": "Unknown model"}},
    response_model_exclude_none=True,
)
async def describe_model(model: str, catalog: CatalogDep) -> ModelDetail:
    """Describe one model: status, version, instances, request/response schemas, an example."""
    return await catalog.describe(model)
