"""``GET /models`` and ``GET /models/{name}``: what is registered, and what is alive."""

from fastapi import APIRouter

from conveyor.registry_api import ModelDetail, ModelSummary
from conveyor.web import ErrorBody
from registry.deps import StoreDep
from registry.views import detail, summary

router = APIRouter(tags=["models"])


@router.get("/models")
async def list_models(store: StoreDep) -> list[ModelSummary]:
    """List every registered model with its status and live instance count."""
    return [summary(record) for record in await store.list()]


@router.get(
    "/models/{name}",
    responses={404: {"model": ErrorBody, "description": "Unknown model"}},
    response_model_exclude_none=True,
)
async def get_model(name: str, store: StoreDep) -> ModelDetail:
    """Show one model: status, version, instances, schemas and an example request."""
    return detail(await store.get(name))
