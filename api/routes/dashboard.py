"""``GET /dashboard``: a live page of every model's state; ``GET /dashboard/data`` feeds it."""

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, RedirectResponse

from api.dashboard import STATIC_DIR
from api.dashboard.monitor import Monitor
from conveyor.web import error_response

router = APIRouter(tags=["dashboard"], include_in_schema=False)

_FILES = {
    "app.js": "text/javascript",
    "style.css": "text/css",
}


@router.get("/dashboard")
async def dashboard_page() -> Response:
    """The page itself (static HTML; it fetches ``/dashboard/data`` every few seconds)."""
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html")


@router.get("/dashboard/")
async def dashboard_slash() -> Response:
    """The page, under its other spelling."""
    return RedirectResponse("/dashboard")


@router.get("/dashboard/static/{name}")
async def dashboard_file(name: str) -> Response:
    """The page's script and style sheet (only these names)."""
    media = _FILES.get(name)
    if media is None:
        return error_response(404, "not_found", f"no dashboard file {name!r}", model=None,
                              field=None)  # fmt: skip
    return FileResponse(STATIC_DIR / name, media_type=media)


@router.get("/dashboard/data")
async def dashboard_data(request: Request) -> Any:
    """Every model's versions, instances, queues, rate, latency, errors, with recent history."""
    monitor: Monitor | None = getattr(request.app.state, "monitor", None)
    if monitor is None:
        return error_response(
            404, "metrics_disabled", "the dashboard needs METRICS_ENABLED=true", model=None,
            field=None,
        )  # fmt: skip
    return monitor.data()
