"""``POST /predict/{model}``: run a model on a JSON request, synchronously or not.

Predict is the gateway's hot path, so it is served twice over the same ``run_predict``:
``PredictFastPath``, an ASGI middleware inside FastAPI's stack (so middleware added to the app
wraps it like any route), answers ``POST /predict/<model>`` without the router's path matching
and the dependency solver; the FastAPI route documents the operation in the OpenAPI schema and
answers whatever the middleware passes on (another method, a path with more segments).

A streamed predict (``?stream=true`` or ``Accept: text/event-stream``) answers Server-Sent
Events (``api.streaming``): synchronously, the pieces as the model yields them (those ready at
once in one write), then ``done`` with the response combined (or ``error``); with
``mode=async``, a 202 whose ``stream_url`` (``GET /tasks/{id}/stream``) follows the pieces.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from redis.exceptions import RedisError
from starlette.datastructures import QueryParams, State
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from api.callbacks.urls import check_callback_url
from api.catalog import ModelCatalog, ModelInfo, check_name
from api.codec import parse_request, render_response, response_json
from api.config import Settings
from api.dispatch import Dispatcher, new_task_id
from api.edge import FastPath, arrival_of, read_body, request_id_of
from api.exceptions import (
    InvalidRequest,
    ModelUnavailable,
    ResultTimeout,
    ServiceUnavailable,
    UnsupportedMediaType,
)
from api.idempotency import HEADER, IdempotencyKeys, check_key, fingerprint
from api.pieces import ClientGone, client_gone, first_unless_gone
from api.routes.errors import status_of
from api.schemas import TaskAccepted
from api.streaming import (
    KEEPALIVE_SECONDS,
    SSE_HEADERS,
    SSE_KEEPALIVE,
    StreamEnd,
    StreamItem,
    batches_with_keepalives,
    sse_chunk,
    sse_end,
    sse_error,
    sse_restart,
)
from conveyor.errors import ConveyorError
from conveyor.protocol import MAX_PRIORITY, MIN_PRIORITY, VERSION_PATTERN
from conveyor.streams import Chunk
from conveyor.web import (
    INTERNAL_ERROR_MESSAGE,
    ErrorBody,
    domain_error_response,
    error_body,
    internal_error_response,
)

logger = logging.getLogger(__name__)

router = APIRouter(tags=["predict"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing or wrong API key (when API_KEYS is set)"},
    404: {"model": ErrorBody, "description": "Unknown model or version"},
    413: {"model": ErrorBody, "description": "Body larger than MAX_BODY_BYTES"},
    415: {"model": ErrorBody, "description": "Body declared as something other than JSON"},
    422: {"model": ErrorBody, "description": "Body, name or parameter not acceptable"},
    429: {"model": ErrorBody, "description": "The model's queue or the gateway is full"},
    500: {"model": ErrorBody, "description": "The model failed on this request"},
    502: {"model": ErrorBody, "description": "The worker's response could not be read"},
    503: {"model": ErrorBody, "description": "No live worker, or a dependency is unreachable"},
    504: {"model": ErrorBody, "description": "No result before the timeout"},
}

STREAM_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["data"],
    "properties": {
        # A piece has no event line: its type is SSE's default, message.
        "event": {"type": "string", "enum": ["message", "restart", "done", "error"]},
        "data": {"type": "string", "contentMediaType": "application/json"},
        "id": {"type": "string", "pattern": "^[0-9]{1,20}-[0-9]{1,20}$"},
    },
    "description": "One Server-Sent Event, as OpenAPI 3.1 describes text/event-stream: a piece "
    "(no event line, so SSE's type message; data: the piece's response message; id: what "
    "Last-Event-ID resumes after), "
    "restart (the pieces before are void; data: {attempt}), then done (data: the response "
    "combined, or the task's state for GET /tasks/{id}/stream) or error (data: the error body).",
}
"""Each event of a streamed response (``api.streaming``), for the OpenAPI document."""

_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"type": "object", "additionalProperties": True},
                "example": {"data": "example"},
            }
        },
        "description": "The model's request message in the protobuf JSON mapping; each "
        "registered model's own operation, POST /predict/<name>, gives its exact schema.",
    }
}


def check_json(content_type: str | None, model: str) -> None:
    """Refuse (415) a body declared as anything but JSON; an undeclared body is read as JSON."""
    if content_type is None:
        return
    media = content_type.split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise UnsupportedMediaType(
            f"the body must be JSON (Content-Type: application/json), not {media!r}", model=model
        )


_PARAMETERS: list[dict[str, Any]] = [
    {
        "name": "mode",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "enum": ["sync", "async"], "default": "sync"},
        "description": "sync: answer the model's response; async: 202 with a task id to poll.",
    },
    {
        "name": "timeout",
        "in": "query",
        "required": False,
        "schema": {"type": "number", "minimum": 0.01, "maximum": 300},  # the defaults
        "description": "Seconds to wait for the result (sync mode), counted from arrival; "
        "between MIN_TIMEOUT (0.01) and MAX_TIMEOUT (300); default DEFAULT_TIMEOUT (30).",
    },
    {
        "name": "version",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "pattern": f"^{VERSION_PATTERN.pattern}$"},
        "description": "The model version (default: the highest live one).",
    },
    {
        "name": "priority",
        "in": "query",
        "required": False,
        "schema": {
            "type": "integer",
            "minimum": MIN_PRIORITY,
            "maximum": MAX_PRIORITY,
            "default": 0,
        },
        "description": "0-9, higher first.",
    },
    {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,255}$"},
        "description": "With mode=async: a retried submit with the same key and request answers "
        "the first one's task (IDEMPOTENCY_TTL); another request with the key is a 422. "
        "Checked, but unused, in sync mode.",
    },
    {
        "name": "max_retries",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 0, "maximum": 10},  # MAX_TASK_RETRIES
        "description": "Runs after a retryable model failure (default: the model's own); at "
        "most MAX_TASK_RETRIES (10).",
    },
    {
        "name": "callback_url",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "format": "uri", "maxLength": 2048},
        "description": "With mode=async: where the task's final status is POSTed (signed with "
        "CALLBACK_SECRET); an http(s) URL to a host CALLBACK_ALLOWED_HOSTS allows. The "
        "Callback-URL header is the same.",
    },
    {
        "name": "stream",
        "in": "query",
        "required": False,
        "schema": {"type": "boolean", "default": False},
        "description": "Answer in pieces as the model yields them: Server-Sent Events (sync), "
        "or a 202 with a stream_url to follow (async). Accept: text/event-stream is the same "
        "for a sync call.",
    },
    {
        "name": "Callback-URL",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "format": "uri", "maxLength": 2048},
        "description": "The callback_url parameter, as a header.",
    },
]


@dataclass(frozen=True)
class PredictOptions:
    """The query parameters of a predict call, checked."""

    asynchronous: bool
    timeout: float
    version: str | None
    priority: int
    max_retries: int | None = None
    callback_url: str = ""
    stream: bool = False


_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}


def wants_events(accept: str | None) -> bool:
    """Whether an ``Accept`` header asks for Server-Sent Events."""
    return accept is not None and "text/event-stream" in accept.lower()


def predict_options(
    query: QueryParams,
    settings: Settings,
    model: str,
    callback_header: str | None = None,
    accept: str | None = None,
) -> PredictOptions:
    """Read and check ``mode``, ``timeout``, ``version``, ``priority``, ``max_retries``,
    ``callback_url`` (the query's, else the ``Callback-URL`` header's; async only) and
    ``stream`` (else ``Accept: text/event-stream``, for a sync call).

    Parsed by hand rather than by FastAPI's parameter machinery: on the hottest path of the
    gateway, that machinery costs more than the rest of the request's own work.
    """
    mode = query.get("mode", "sync")
    if mode not in ("sync", "async"):
        raise InvalidRequest("mode must be 'sync' or 'async'", model=model, field="mode")
    timeout = settings.default_timeout
    raw_timeout = query.get("timeout")
    if raw_timeout is not None:
        try:
            timeout = float(raw_timeout)
        except ValueError:
            timeout = math.nan
    if not settings.min_timeout <= timeout <= settings.max_timeout:
        raise InvalidRequest(
            f"timeout must be between {settings.min_timeout:g} and {settings.max_timeout:g} s",
            model=model,
            field="timeout",
        )
    priority = 0
    raw_priority = query.get("priority")
    if raw_priority is not None:
        if not raw_priority.isdigit() or not MIN_PRIORITY <= int(raw_priority) <= MAX_PRIORITY:
            raise InvalidRequest(
                f"priority must be an integer from {MIN_PRIORITY} to {MAX_PRIORITY}",
                model=model,
                field="priority",
            )
        priority = int(raw_priority)
    max_retries = None
    raw_retries = query.get("max_retries")
    if raw_retries is not None:
        if not raw_retries.isdigit() or int(raw_retries) > settings.max_task_retries:
            raise InvalidRequest(
                f"max_retries must be an integer from 0 to {settings.max_task_retries}",
                model=model,
                field="max_retries",
            )
        max_retries = int(raw_retries)
    given = [url for url in (query.get("callback_url"), callback_header) if url is not None]
    for url in given:  # each one given must be a URL a callback may go to (the query's wins)
        if mode != "async":
            raise InvalidRequest("callback_url needs mode=async", model=model, field="callback_url")
        check_callback_url(url, settings.callback_allowed_hosts, model)
    callback_url = given[0] if given else ""
    raw_stream = query.get("stream")
    if raw_stream is None:
        stream = mode == "sync" and wants_events(accept)
    elif raw_stream.lower() in _BOOLEANS:
        stream = _BOOLEANS[raw_stream.lower()]
    else:
        raise InvalidRequest("stream must be true or false", model=model, field="stream")
    return PredictOptions(
        mode == "async", timeout, query.get("version"), priority, max_retries, callback_url,
        stream,
    )  # fmt: skip


@router.post(
    "/predict/{model}",
    status_code=200,
    responses={
        200: {
            "description": "The model's response message as JSON; with stream=true (or "
            "Accept: text/event-stream), Server-Sent Events: one per piece, then done or error",
            "content": {"text/event-stream": {"schema": STREAM_EVENT_SCHEMA}},
        },
        202: {"model": TaskAccepted, "description": "Accepted (mode=async)"},
        **_ERRORS,
    },
    openapi_extra={**_BODY, "parameters": _PARAMETERS},
)
async def predict(model: str, request: Request) -> Response:
    """Run ``model`` on the JSON body; answer its response, or 202 + task id with mode=async.

    Each registered model also has an operation of its own, ``POST /predict/<name>``, with the
    exact schemas of its request and response (``api.openapi``).

    ``PredictFastPath`` serves this path (the same ``run_predict``, without FastAPI's routing);
    this route documents it and answers whatever the fast path passes on.
    """
    return await run_predict(
        request.app.state,
        model,
        request.query_params,
        request.headers.get("content-type"),
        request.body,
        request.scope,
        gone=client_gone(request.receive),
    )


async def run_predict(
    state: State,
    model: str,
    query: QueryParams,
    content_type: str | None,
    read_body: Callable[[], Awaitable[bytes]],
    scope: Scope,
    gone: Callable[[], Awaitable[None]] | None = None,
) -> Response:
    """The predict call: check the request, queue the task, answer its result (or 202).

    ``read_body`` reads the request body (raising ``ClientDisconnect`` when the client left);
    ``gone`` (optional) returns once the client has left, for a stream still waiting for its
    first piece; errors are raised as the gateway's domain errors, for the caller to render.
    """
    settings: Settings = state.settings
    catalog: ModelCatalog = state.catalog
    dispatcher: Dispatcher = state.dispatcher
    check_json(content_type, model)
    options = predict_options(
        query, settings, model, _header(scope, _CALLBACK_URL), _header(scope, _ACCEPT)
    )
    check_name(model, options.version)
    info = await catalog.get(model, options.version)
    try:
        body = await read_body()
    except ClientDisconnect:
        # The client hung up before sending its body (it gave up waiting): nobody reads this.
        return Response(_GONE, 400, media_type="application/json")
    payload = parse_request(body, info.request_class, model, settings.max_json_depth)
    request_id = request_id_of(scope)
    key = _header(scope, _IDEMPOTENCY_KEY)
    if key is not None:
        check_key(key, model)  # a malformed key is refused in either mode
    if options.asynchronous:
        task_id, version = await _submit(state, info, payload, options, key, request_id)
        accepted = TaskAccepted(
            task_id=task_id,
            model=model,
            version=version,
            status="pending",
            status_url=f"/tasks/{task_id}",
            stream_url=f"/tasks/{task_id}/stream" if options.stream else None,
        )
        return Response(
            orjson.dumps(accepted.model_dump(exclude_none=True)),
            status_code=202,
            media_type="application/json",
        )
    if not info.alive:
        raise ModelUnavailable(
            f"model {model!r} version {info.version!r} has no live worker", model=model
        )
    remaining = options.timeout - (time.monotonic() - arrival_of(scope))
    if remaining <= 0:
        raise ResultTimeout(
            f"the request spent its {options.timeout:g} s timeout waiting in the gateway",
            model=model,
            task_id=None,
        )
    if options.stream:
        return await _stream(dispatcher, info, payload, options, remaining, request_id, gone)
    result = await dispatcher.run(
        info, payload, seconds=remaining, priority=options.priority, request_id=request_id,
        max_retries=options.max_retries,
    )  # fmt: skip
    return Response(orjson.dumps(response_json(result, info)), media_type="application/json")


async def _stream(
    dispatcher: Dispatcher, info: ModelInfo, payload: bytes, options: PredictOptions,
    seconds: float, request_id: str, gone: Callable[[], Awaitable[None]] | None,
) -> Response:  # fmt: skip
    """A synchronous streamed predict: an error before the first piece is the usual JSON
    error answer (a task that failed before any piece too); after it, an ``error`` event. A
    client that leaves before the first piece stops the stream then."""
    items = dispatcher.stream(
        info, payload, seconds=seconds, priority=options.priority, request_id=request_id,
        max_retries=options.max_retries,
    )  # fmt: skip
    try:
        first = await (anext(items) if gone is None else first_unless_gone(items, gone))
        if isinstance(first, StreamEnd) and first.result.WhichOneof("outcome") == "error":
            response_json(first.result, info)  # raises TaskFailed, the usual answer
    except ClientGone:  # the stream is stopped; nobody reads this
        await items.aclose()
        return Response(_GONE, 400, media_type="application/json")
    except BaseException:
        await items.aclose()
        raise
    return StreamingResponse(
        predict_events(first, items, info), media_type="text/event-stream", headers=SSE_HEADERS
    )


_GONE = b'{"error": "client disconnected"}'


async def predict_events(
    first: StreamItem, items: AsyncGenerator[StreamItem, None], info: ModelInfo
) -> AsyncIterator[bytes]:
    """A streamed predict's events: each piece as the model's response message in JSON, each
    restart, then ``done`` (the response combined) or ``error``. The events ready at once leave
    together, in one write. Closes ``items`` when the client goes away (the worker is then asked
    to stop)."""
    batches = batches_with_keepalives(items, KEEPALIVE_SECONDS)
    events: list[bytes] = []
    try:
        batch: list[StreamItem] | None = [first]
        ended = False
        while batch is not None and not ended:
            if not batch:
                yield SSE_KEEPALIVE
            for item in batch:
                if isinstance(item, StreamEnd):
                    events.append(sse_end(response_json(item.result, info)))
                    ended = True
                    break
                if isinstance(item, Chunk):
                    piece = render_response(item.payload, info.response_class, info.name)
                    events.append(sse_chunk(item, piece))
                else:
                    events.append(sse_restart(item))
            if events:
                yield b"".join(events)
                events.clear()
            if not ended:
                batch = await anext(batches, None)
    except ConveyorError as e:
        yield b"".join(events) + sse_error(error_event_body(e, info.name))
    except Exception:
        logger.exception("a stream of model %s failed", info.name)
        yield b"".join(events) + sse_error(error_body("internal", INTERNAL_ERROR_MESSAGE))
    finally:
        await batches.aclose()


def error_event_body(exc: ConveyorError, model: str | None) -> dict[str, Any]:
    """The JSON error body of ``exc`` as the HTTP answer would carry it (no headers)."""
    _, extra = status_of(exc)
    extra.pop("headers", None)
    return error_body(exc.code, exc.message, **{"model": model, "field": None, **extra})


async def _submit(
    state: State, info: ModelInfo, payload: bytes, options: PredictOptions, key: str | None,
    request_id: str,
) -> tuple[str, str]:  # fmt: skip
    """Submit an async task; with an idempotency ``key`` (checked), at most one task per key
    and request (``api.idempotency``). Returns the task's id and version."""
    settings: Settings = state.settings
    dispatcher: Dispatcher = state.dispatcher
    task_id = None
    if key is not None:
        keys: IdempotencyKeys = state.idempotency
        streamed = ("stream",) if options.stream else ()  # the earlier prints stay the same
        print_ = fingerprint(
            info.name, options.version, options.priority, payload,
            options.callback_url, str(options.max_retries), *streamed,
        )  # fmt: skip
        try:
            claim = await keys.claim(key, print_, new_task_id(), info.version, info.name)
        except (RedisError, OSError) as e:
            raise ServiceUnavailable(
                "Redis is unreachable: the Idempotency-Key cannot be checked",
                dependency="redis",
                model=info.name,
                retry_after=settings.retry_after,
            ) from e
        if not claim.first:
            return claim.task_id, claim.version
        task_id = claim.task_id
    try:
        submitted = await dispatcher.submit(
            info,
            payload,
            deadline=settings.async_deadline,
            priority=options.priority,
            request_id=request_id,
            task_id=task_id,
            callback_url=options.callback_url,
            max_retries=options.max_retries,
            stream=options.stream,
        )
    except BaseException:
        if key is not None and task_id is not None:
            with contextlib.suppress(RedisError, OSError):
                await state.idempotency.release(key, task_id)
        raise
    return submitted, info.version


def _header(scope: Scope, name: bytes) -> str | None:
    """The first value of the header ``name`` (lower case), or None."""
    for header, value in scope["headers"]:
        if header == name:
            return str(value.decode("latin-1"))
    return None


PREFIX = "/predict/"
_IDEMPOTENCY_KEY = HEADER.encode()
_CALLBACK_URL = b"callback-url"
_ACCEPT = b"accept"


class PredictFastPath(FastPath):
    """``POST /predict/<model>`` runs ``run_predict`` (streamed or not); the rest goes on."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        model = path[len(PREFIX) :]
        if scope["method"] != "POST" or not path.startswith(PREFIX) or not model or "/" in model:
            await self.app(scope, receive, send)
            return
        content_type = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value.decode("latin-1")
                break

        try:
            response = await run_predict(
                self.state,
                model,
                QueryParams(scope["query_string"]),
                content_type,
                lambda: read_body(receive),
                scope,
                gone=client_gone(receive),
            )
        except ConveyorError as exc:
            response = domain_error_response(exc, status_of, {"model": model, "field": None})
        except Exception:
            logger.exception("unhandled error on POST %s", path)
            response = internal_error_response()
        await response(scope, receive, send)
