"""``GET /healthz``: traceview is up."""

from fastapi import APIRouter

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness of the traceview process."""
    return {"status": "ok"}
