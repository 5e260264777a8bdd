"""``GET /healthz`` (process up) and ``GET /readyz`` (brokers and registry reachable)."""

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import CatalogDep, DispatcherDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The gateway process is up."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    responses={
        200: {"description": "Ready"},
        503: {"description": "A dependency is not reachable"},
    },
)
async def readyz(catalog: CatalogDep, dispatcher: DispatcherDep) -> JSONResponse:
    """The gateway can serve: RabbitMQ, Redis and the registry answer."""
    checks = {**await dispatcher.ready(), "registry": await catalog.ping()}
    ready = all(checks.values())
    body = {"status": "ready" if ready else "not_ready", "checks": checks}
    return JSONResponse(status_code=200 if ready else 503, content=body)
