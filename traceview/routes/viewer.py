"""``GET /``: the trace viewer, one static page with its script and style sheet (no CDN)."""

from pathlib import Path

from fastapi import APIRouter, Response
from fastapi.responses import FileResponse

from traceview.exceptions import StaticFileNotFound

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
"""The page's files (``traceview/static``, data of the ``//traceview`` library)."""

router = APIRouter(tags=["viewer"], include_in_schema=False)

_FILES = {
    "viewer.js": "text/javascript",
    "viewer.css": "text/css",
}


@router.get("/")
async def viewer_page() -> Response:
    """The page: recent traces and one trace's waterfall, over the JSON API."""
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html")


@router.get("/static/{name}")
async def viewer_file(name: str) -> Response:
    """The page's script and style sheet (only these names)."""
    media = _FILES.get(name)
    if media is None:
        raise StaticFileNotFound(f"no viewer file {name!r}")
    return FileResponse(STATIC_DIR / name, media_type=media)
