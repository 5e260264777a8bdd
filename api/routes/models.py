"""``GET /models`` and ``GET /models/{name}``: the models the registry knows."""

from typing import Any

from fastapi import APIRouter

from api.deps import CatalogDep

router = APIRouter(tags=["models"])


@router.get("/models")
async def list_models(catalog: CatalogDep) -> list[dict[str, Any]]:
    """List models: name, status (alive/dead), version, live instances, queue."""
    return await catalog.list()


@router.get("/models/{model}", responses={404: {"description": "Unknown model"}})
async def describe_model(model: str, catalog: CatalogDep) -> dict[str, Any]:
    """Describe one model: status, version, instances, request/response schemas, an example."""
    return await catalog.describe(model)
