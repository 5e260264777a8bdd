"""``InferFastPath``: the protocol's infer call answered before FastAPI's router.

``POST /v2/models/<model>/infer`` and ``POST /v2/models/<model>/versions/<version>/infer`` are
the protocol's hot path. This ASGI middleware sits inside FastAPI's stack (after the ``Edge``:
request id, in-flight bound, body limit, keys, metrics; and after any middleware added to the
app), like ``api.routes.predict.PredictFastPath``, and answers them with the route's own
``run_infer`` without the router's path matching (every route of the app is tried in turn)
and the dependency solver. Everything else goes on to the app: a path it does not take (an
empty segment) and a request with a query string (the route also reads ``?version=`` and
checks it), which the FastAPI route answers; the route also documents the operation.
Errors are the protocol's (``oip_error``), as on the route.
"""

from __future__ import annotations

from starlette.types import Receive, Scope, Send

from api.edge import FastPath, read_body
from api.oip.routes import Inference, oip_error, run_infer

__all__ = ["InferFastPath", "infer_target"]

_PREFIX = "/v2/models/"
_HEADER_LENGTH = b"inference-header-content-length"
_CONTENT_ENCODING = b"content-encoding"


def infer_target(path: str) -> tuple[str, str | None] | None:
    """``(model, version)`` of an infer path (version None: the model's default), or None for
    any other path."""
    if not path.startswith(_PREFIX) or not path.endswith("/infer"):
        return None
    parts = path[len(_PREFIX) : -len("/infer")].split("/")
    if len(parts) == 1 and parts[0]:
        return parts[0], None
    if len(parts) == 3 and parts[0] and parts[1] == "versions" and parts[2]:
        return parts[0], parts[2]
    return None


class InferFastPath(FastPath):
    """``POST /v2/models/<m>[/versions/<v>]/infer`` runs ``run_infer``; the rest goes on."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = (
            infer_target(scope["path"])
            if scope["type"] == "http" and scope["method"] == "POST" and not scope["query_string"]
            else None
        )
        if target is None:
            await self.app(scope, receive, send)
            return
        header_length = content_encoding = None
        for name, value in scope["headers"]:
            # The first of a repeated header, as the route's ``request.headers.get`` takes it.
            if name == _HEADER_LENGTH and header_length is None:
                header_length = value.decode("latin-1")
            elif name == _CONTENT_ENCODING and content_encoding is None:
                content_encoding = value.decode("latin-1")
        state = self.state
        try:
            response = await run_infer(
                Inference(state.catalog, state.dispatcher, state.settings),
                *target,
                await read_body(receive),
                header_length,
                content_encoding,
                scope,
            )
        except Exception as exc:
            response = oip_error(exc)
        await response(scope, receive, send)
