"""``POST /predict/{model}`` served straight off ASGI, ahead of FastAPI's routing.

Predict is the gateway's hot path. Through FastAPI, a request there passes five middleware
layers, the router's path matching and the dependency solver before the handler runs, and each
``await`` inside the handler resumes through all of them again; together that cost about as
much CPU as the handler's own work. The shortcut runs the same handler
(``api.routes.predict.run_predict``) with the same error contract, inside the same ``Edge``
(request id, in-flight bound, body limit, keys, metrics). The FastAPI route stays: it documents
the operation and answers what the shortcut passes on (another method, a path with more segments).
"""

from __future__ import annotations

import logging

from starlette.datastructures import QueryParams, State
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from api.routes.errors import status_of
from api.routes.predict import run_predict
from conveyor.errors import ConveyorError
from conveyor.web import domain_error_response, internal_error_response

__all__ = ["PredictShortcut"]

PREFIX = "/predict/"

logger = logging.getLogger(__name__)


class PredictShortcut:
    """An ASGI app: ``POST /predict/<model>`` runs ``run_predict``; the rest goes to ``app``."""

    def __init__(self, app: ASGIApp, state: State) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        model = path[len(PREFIX) :]
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or not path.startswith(PREFIX)
            or not model
            or "/" in model
        ):
            await self.app(scope, receive, send)
            return
        content_type = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value.decode("latin-1")
                break

        async def read_body() -> bytes:
            chunks = []
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ClientDisconnect()
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    return b"".join(chunks)

        try:
            response = await run_predict(
                self.state,
                model,
                QueryParams(scope["query_string"]),
                content_type,
                read_body,
                scope,
            )
        except ConveyorError as exc:
            response = domain_error_response(exc, status_of, {"model": model, "field": None})
        except Exception:
            logger.exception("unhandled error on POST %s", path)
            response = internal_error_response()
        await response(scope, receive, send)
