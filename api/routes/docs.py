"""``GET /openapi.json`` (the live document of ``api.openapi``), ``/docs`` and ``/redoc``.

FastAPI's own routes for these serve a document fixed at the first request; the gateway's
changes as models register, so the app is built without them (``openapi_url=None``) and these
serve the same pages over ``api.openapi.LiveDocument``.
"""

from fastapi import APIRouter, Request, Response
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse

from api.openapi import LiveDocument

router = APIRouter(include_in_schema=False)

OPENAPI_URL = "/openapi.json"
_OAUTH2_REDIRECT = "/docs/oauth2-redirect"


def _live(request: Request) -> LiveDocument:
    state = request.app.state
    live: LiveDocument | None = getattr(state, "openapi_document", None)
    if live is None:
        live = state.openapi_document = LiveDocument(
            request.app.openapi, ttl=state.settings.registry_cache_seconds
        )
    return live


@router.get(OPENAPI_URL)
async def openapi_document(request: Request) -> Response:
    """The OpenAPI document, with an operation per registered model."""
    state = request.app.state
    body = await _live(request).render(getattr(state, "catalog", None), state.settings)
    return Response(body, media_type="application/json")


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    """The OpenAPI UI."""
    return get_swagger_ui_html(
        openapi_url=OPENAPI_URL,
        title=f"{request.app.title} - Swagger UI",
        oauth2_redirect_url=_OAUTH2_REDIRECT,
    )


@router.get(_OAUTH2_REDIRECT)
async def swagger_ui_redirect() -> HTMLResponse:
    """The OpenAPI UI's OAuth2 redirect page."""
    return get_swagger_ui_oauth2_redirect_html()


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    """The document in ReDoc."""
    return get_redoc_html(openapi_url=OPENAPI_URL, title=f"{request.app.title} - ReDoc")
