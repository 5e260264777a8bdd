"""``GET /models``: the models the registry knows, with their status."""

from typing import Any

from fastapi import APIRouter

from api.deps import CatalogDep

router = APIRouter(tags=["models"])


@router.get("/models")
async def list_models(catalog: CatalogDep) -> list[dict[str, Any]]:
    """List models: name, status (alive/dead), version, live instances, queue."""
    return await catalog.list()
