"""The models: what is registered, which versions, and what is alive."""

from typing import Any

from fastapi import APIRouter

from conveyor.registry_api import ModelDetail, ModelSummary
from conveyor.web import ErrorBody
from registry.deps import KeyDep, StoreDep
from registry.views import detail, summary

router = APIRouter(tags=["models"])

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "Unknown model or version"}
}


@router.get("/models")
async def list_models(store: StoreDep) -> list[ModelSummary]:
    """Every registered model: its default version's status and instances, and every version."""
    return [summary(record) for record in await store.list()]


@router.get("/models/{name}", responses=_NOT_FOUND, response_model_exclude_none=True)
async def get_model(name: str, store: StoreDep) -> ModelDetail:
    """One model's default version (the highest live one): schemas and an example request."""
    return detail(await store.get(name))


@router.get(
    "/models/{name}/versions/{version}", responses=_NOT_FOUND, response_model_exclude_none=True
)
async def get_version(name: str, version: str, store: StoreDep) -> ModelDetail:
    """One version of a model: its status, instances, schemas and an example request."""
    return detail(await store.get(name), version)


@router.delete(
    "/models/{name}/versions/{version}",
    status_code=204,
    dependencies=[KeyDep],
    responses={
        **_NOT_FOUND,
        401: {"model": ErrorBody, "description": "Missing or wrong registry key"},
        409: {"model": ErrorBody, "description": "The version has live instances"},
    },
)
async def forget_version(name: str, version: str, store: StoreDep) -> None:
    """Forget a version that has no live instance, so its name can take a new schema."""
    await store.forget_version(name, version)
