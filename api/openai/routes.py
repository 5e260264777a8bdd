"""The OpenAI-compatible endpoints under ``/v1``: ``GET /v1/models`` (and one model),
``POST /v1/completions`` and ``POST /v1/chat/completions``, streamed or not.

The official ``openai`` client works against them unchanged (``base_url`` ``<gateway>/v1``;
its ``Authorization: Bearer`` header carries the gateway's API key when ``API_KEYS`` is set).
Each request is one synchronous streamed task (``Dispatcher.stream``) on the model's default
version (or the ``name:version`` asked), with ``MAX_TIMEOUT`` for the whole generation: a
streamed answer sends each piece as it comes, one not streamed collects them. Errors are in
OpenAI's shape (``api.openai.errors``); a client that goes away stops the generation.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse

from api.deps import SettingsDep
from api.edge import request_id_of
from api.exceptions import ModelNotFound, ModelUnavailable
from api.oip.execute import response_message
from api.oip.ports import DispatcherDep
from api.openai.contract import (
    TextCatalog,
    TextModel,
    chat_prompt,
    finish_reason,
    not_found,
    request_payload,
    resolve,
    serves,
    usage,
)
from api.openai.errors import ERROR_RESPONSES, OpenAIRefusal, OpenAIRoute, error_object
from api.openai.objects import Reply, stream_events
from api.openai.requests import ChatRequest, CompletionRequest
from api.pieces import StreamItem, client_gone, close, sse_answer, started
from api.protocol_errors import answer_unknown_paths
from conveyor.streams import Chunk, Restart

__all__ = ["router"]

OWNER = "conveyor"
"""``owned_by`` of every model listed."""


async def get_catalog(request: Request) -> TextCatalog:
    """The catalog of the app serving the request."""
    catalog: TextCatalog = request.app.state.catalog
    return catalog


CatalogDep = Annotated[TextCatalog, Depends(get_catalog)]

router = APIRouter(
    prefix="/v1",
    tags=["OpenAI-compatible (v1)"],
    route_class=OpenAIRoute,
    responses=ERROR_RESPONSES,
)


def _model_object(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": OWNER}


@router.get("/models")
async def list_models(catalog: CatalogDep) -> dict[str, Any]:
    """The models that follow the text-generation contract and have a live worker."""
    data = [_model_object(s.name) for s in await catalog.list() if serves(s)]
    return {"object": "list", "data": data}


@router.get("/models/{model}")
async def retrieve_model(model: str, catalog: CatalogDep) -> dict[str, Any]:
    """One such model (``name`` or ``name:version``); 404 for any other."""
    try:
        await resolve(catalog, model)
    except (ModelNotFound, ModelUnavailable, OpenAIRefusal) as exc:
        raise not_found(model) from exc
    return _model_object(model)


_ANSWER_OPENAPI: dict[str, Any] = {
    "responses": {
        "200": {
            "description": "The answer: one object, or with stream: true its chunks as "
            "Server-Sent Events ('data: <chunk>' each, then 'data: [DONE]')",
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "text/event-stream": {
                    "schema": {
                        "type": "object",
                        "required": ["data"],
                        "properties": {"data": {"type": "string"}},
                        "description": "One Server-Sent Event, as OpenAPI 3.1 describes "
                        "text/event-stream: data: a chunk as JSON, or [DONE] last",
                    }
                },
            },
        }
    }
}


@router.post("/completions", response_model=None, openapi_extra=_ANSWER_OPENAPI)
async def completions(
    body: CompletionRequest,
    request: Request,
    catalog: CatalogDep,
    dispatcher: DispatcherDep,
    settings: SettingsDep,
) -> JSONResponse | StreamingResponse:
    """A completion of ``prompt``: one ``text_completion``, or its chunks as Server-Sent
    Events with ``stream: true``."""
    prompt = body.text()
    info = await resolve(catalog, body.model)
    payload = request_payload(
        info, prompt, max_tokens=body.max_tokens, seed=body.seed, temperature=body.temperature
    )
    reply = Reply.new(chat=False, model=body.model)
    return await _answer(
        reply, info, payload, prompt, body.max_tokens, body, request, dispatcher, settings
    )


@router.post("/chat/completions", response_model=None, openapi_extra=_ANSWER_OPENAPI)
async def chat_completions(
    body: ChatRequest,
    request: Request,
    catalog: CatalogDep,
    dispatcher: DispatcherDep,
    settings: SettingsDep,
) -> JSONResponse | StreamingResponse:
    """The assistant's next message after ``messages``: one ``chat.completion``, or its
    ``chat.completion.chunk``s as Server-Sent Events with ``stream: true``."""
    body.check()
    prompt = chat_prompt(body.messages)
    info = await resolve(catalog, body.model)
    limit = body.limit()
    payload = request_payload(
        info, prompt, max_tokens=limit, seed=body.seed, temperature=body.temperature
    )
    reply = Reply.new(chat=True, model=body.model)
    return await _answer(reply, info, payload, prompt, limit, body, request, dispatcher, settings)


async def _answer(
    reply: Reply,
    info: TextModel,
    payload: bytes,
    prompt: str,
    limit: int | None,
    body: CompletionRequest | ChatRequest,
    request: Request,
    dispatcher: DispatcherDep,
    settings: SettingsDep,
) -> JSONResponse | StreamingResponse:
    items = dispatcher.stream(
        info,
        payload,
        seconds=settings.max_timeout,
        request_id=request_id_of(request.scope),
    )
    gone = client_gone(request.receive)
    if not body.stream:
        pieces = await started(items, gone)
        return JSONResponse(await _collected(reply, info, pieces, prompt, limit))
    include_usage = body.stream_options is not None and body.stream_options.include_usage
    return await sse_answer(
        items,
        functools.partial(
            stream_events,
            reply,
            info=info,
            prompt=prompt,
            limit=limit,
            include_usage=include_usage,
            error_body=error_object,
        ),
        model=info.name,
        gone=gone,
    )


async def _collected(
    reply: Reply, info: TextModel, items: AsyncIterator[StreamItem], prompt: str, limit: int | None
) -> dict[str, Any]:
    """The whole answer: the result's text (the pieces combined), the pieces of the run that
    finished counted."""
    pieces = 0
    try:
        async for item in items:
            if isinstance(item, Restart):
                pieces = 0
            elif isinstance(item, Chunk):
                pieces += 1
            else:
                text = getattr(response_message(item.result, info), "text", "")
                return reply.completion(
                    str(text), finish_reason(pieces, limit), usage(prompt, pieces)
                )
    finally:
        await close(items)
    raise RuntimeError("the stream ended without its end")


answer_unknown_paths(
    router,
    "this server has /v1/models, /v1/models/{model}, /v1/completions and /v1/chat/completions",
)
