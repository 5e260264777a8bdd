"""``GET /healthz``: the registry process is up."""

from fastapi import APIRouter

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness of the registry process itself."""
    return {"status": "ok"}
