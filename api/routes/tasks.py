"""``GET /tasks/{task_id}`` (status, optionally waiting for the end), ``GET
/tasks/{task_id}/events`` (the task's life as Server-Sent Events), ``GET
/tasks/{task_id}/stream`` (a streamed task's pieces as Server-Sent Events) and ``DELETE
/tasks/{task_id}`` (cancel a queued task)."""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Request
from fastapi.responses import StreamingResponse

from api.catalog import ModelCatalog
from api.codec import render_response
from api.config import Settings
from api.deps import CatalogDep, DispatcherDep
from api.dispatch import Dispatcher, TaskStatus
from api.exceptions import InvalidRequest
from api.following import TaskFollower
from api.routes.predict import STREAM_EVENT_SCHEMA, error_event_body
from api.schemas import TaskState
from api.streaming import (
    KEEPALIVE_SECONDS,
    SSE_HEADERS,
    SSE_KEEPALIVE,
    StreamEnd,
    sse_chunk,
    sse_end,
    sse_error,
    sse_restart,
    with_keepalives,
)
from api.task_state import task_state
from conveyor.errors import ConveyorError
from conveyor.events import PROGRESS, QUEUED, RETRYING, STARTED, TaskEvent
from conveyor.streams import Chunk
from conveyor.web import INTERNAL_ERROR_MESSAGE, ErrorBody, error_body

logger = logging.getLogger(__name__)

router = APIRouter(tags=["tasks"])

TaskId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")]

_EVENT_ID = re.compile(r"[0-9]{1,20}(-[0-9]{1,20})?")
"""A stream entry id, ``<ms>-<n>``, or ``<ms>`` alone (Redis reads it as ``<ms>-0``)."""
_POLL_SECONDS = 0.05
"""How often a wait polls a task that has no event stream (a synchronous task's record)."""
_KEEPALIVE_SECONDS = 15.0
_POSITION_SECONDS = 1.0
"""How often an event stream re-reads a queued task's position."""

_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {
            "type": "string",
            "enum": [
                "queued", "position", "started", "progress", "retrying", "chunk", "restart",
                "done", "failed", "cancelled", "error",
            ],
        },
        "data": {"type": "string", "contentMediaType": "application/json"},
        "id": {"type": "string", "pattern": "^[0-9]{1,20}-[0-9]{1,20}$"},
        "retry": {"type": "integer", "minimum": 0},
    },
}  # fmt: skip

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing or wrong API key (when API_KEYS is set)"},
    404: {"model": ErrorBody, "description": "Unknown or expired task"},
    422: {"model": ErrorBody, "description": "Not a task id, or a parameter out of range"},
    503: {"model": ErrorBody, "description": "Redis is unreachable"},
}


def _wait_seconds(raw: str | None, settings: Settings) -> float:
    """The ``wait`` parameter: 0 (default) to ``MAX_TIMEOUT`` seconds, else a 422."""
    if raw is None:
        return 0.0
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds <= settings.max_timeout:
        raise InvalidRequest(
            f"wait must be a number of seconds from 0 to {settings.max_timeout:g}", field="wait"
        )
    return seconds


async def _until_end(
    status: TaskStatus, seconds: float, follower: TaskFollower, dispatcher: Dispatcher
) -> TaskStatus:
    """The task's status once it ended, or after ``seconds``."""
    deadline = time.monotonic() + seconds
    if status.record is not None and status.record.events:
        after = "0-0"
        while (remaining := deadline - time.monotonic()) > 0:
            events = await follower.events_after(
                status.task_id, after, max(1, int(remaining * 1000))
            )
            if any(event.final for event in events):
                break
            if events:
                after = events[-1].id
    else:  # no stream (a synchronous task's record): poll
        while status.result is None and time.monotonic() < deadline:
            await asyncio.sleep(min(_POLL_SECONDS, max(0.0, deadline - time.monotonic())))
            status = await dispatcher.status(status.task_id)
        return status
    return await dispatcher.status(status.task_id)


@router.get(
    "/tasks/{task_id}",
    name="get_task",
    responses=_ERRORS,
    response_model_exclude_none=True,
    openapi_extra={
        "parameters": [
            {
                "name": "wait",
                "in": "query",
                "required": False,
                "schema": {"type": "number", "minimum": 0, "maximum": 300},  # MAX_TIMEOUT
                "description": "Hold the request until the task ends or this many seconds "
                "pass (at most MAX_TIMEOUT), then answer its status either way.",
            }
        ]
    },
)
async def get_task(
    task_id: TaskId, request: Request, catalog: CatalogDep, dispatcher: DispatcherDep
) -> TaskState:
    """Return ``pending`` (with its stage, position, estimated start, progress), ``done`` with
    the result, ``failed`` with the error, or ``cancelled``; with ``?wait=S``, once it ends or
    after ``S`` seconds."""
    wait = _wait_seconds(request.query_params.get("wait"), request.app.state.settings)
    follower: TaskFollower = request.app.state.follower
    status = await dispatcher.status(task_id)
    if status.result is None and wait > 0:
        follower.check_room(status.model)
        async with follower.parked():
            status = await _until_end(status, wait, follower, dispatcher)
    return await task_state(status, catalog, await follower.pending(status))


def _sse(kind: str, data: dict[str, Any], event_id: str | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {kind}\n".encode() + b"data: " + orjson.dumps(data) + b"\n\n"


class _EventStream:
    """One client's ``GET /tasks/{id}/events``: the stream's events after ``after``, then the
    ones that come, a ``position`` update each second while queued, until the final event."""

    def __init__(
        self,
        status: TaskStatus,
        after: str,
        follower: TaskFollower,
        dispatcher: Dispatcher,
        catalog: ModelCatalog,
    ) -> None:
        self.status = status
        self.after = after
        self.follower = follower
        self.dispatcher = dispatcher
        self.catalog = catalog
        self.queued_seq: int | None = None
        self.position: int | None = None

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async with self.follower.parked():
            try:
                if self.status.record is None or not self.status.record.events:
                    async for chunk in self._without_stream():
                        yield chunk
                    return
                async for chunk in self._follow():
                    yield chunk
            except ConveyorError as e:  # Redis went away, or the task expired meanwhile
                yield _sse("error", error_body(e.code, e.message))

    async def _final(self, event_id: str | None) -> bytes:
        status = await self.dispatcher.status(self.status.task_id)
        state = await task_state(status, self.catalog, await self.follower.pending(status))
        return _sse(state.status, state.model_dump(exclude_none=True), event_id)

    async def _without_stream(self) -> AsyncIterator[bytes]:
        quiet = time.monotonic()
        while self.status.result is None:
            await asyncio.sleep(_POLL_SECONDS * 4)
            self.status = await self.dispatcher.status(self.status.task_id)
            if time.monotonic() - quiet > _KEEPALIVE_SECONDS:
                quiet = time.monotonic()
                yield b": keepalive\n\n"
        yield await self._final(None)

    async def _follow(self) -> AsyncIterator[bytes]:
        if self.status.result is not None and not await self.follower.events_after(
            self.status.task_id, self.after, 0
        ):
            return  # resumed after the final event: nothing follows it
        quiet = time.monotonic()
        while True:
            block = _POSITION_SECONDS if self.queued_seq is not None else _KEEPALIVE_SECONDS
            events = await self.follower.events_after(
                self.status.task_id, self.after, int(block * 1000)
            )
            for event in events:
                self.after = event.id
                if event.final:
                    yield await self._final(event.id)
                    return
                yield await self._render(event)
                quiet = time.monotonic()
            if self.queued_seq is not None:
                update = await self._position_update()
                if update is not None:
                    yield update
                    quiet = time.monotonic()
            if not events and time.monotonic() - quiet >= _KEEPALIVE_SECONDS:
                # Still there? (A task that expired ends the stream with a 404 error event.)
                self.status = await self.dispatcher.status(self.status.task_id)
                quiet = time.monotonic()
                yield b": keepalive\n\n"

    async def _render(self, event: TaskEvent) -> bytes:
        data: dict[str, Any] = {
            "task_id": self.status.task_id,
            "type": event.type,
            "unix_ms": event.unix_ms,
        }
        fields = event.fields
        self.queued_seq = None
        if event.type in (QUEUED, RETRYING):
            seq = fields.get("seq", "")
            if seq.isdigit():
                self.queued_seq = int(seq)
                self.position, estimate = await self.follower.position(
                    self.status.model, self.status.version, self.queued_seq
                )
                data["position"] = self.position
                if estimate is not None:
                    data["estimated_start_unix_ms"] = estimate
        if event.type in (STARTED, RETRYING) and fields.get("attempt", "").isdigit():
            data["attempt"] = int(fields["attempt"])
        if event.type == STARTED:
            data["worker"] = fields.get("worker", "")
        elif event.type == PROGRESS:
            fraction = fields.get("fraction", "")
            data["fraction"] = float(fraction) if fraction else None
            data["message"] = fields.get("message", "")
        elif event.type == RETRYING:
            data["delay_ms"] = int(fields.get("delay_ms", "0") or 0)
            data["error"] = {"code": fields.get("code", ""), "message": fields.get("message", "")}
        return _sse(event.type, data, event.id)

    async def _position_update(self) -> bytes | None:
        assert self.queued_seq is not None
        position, estimate = await self.follower.position(
            self.status.model, self.status.version, self.queued_seq
        )
        if position == self.position:
            return None
        self.position = position
        data: dict[str, Any] = {"task_id": self.status.task_id, "position": position}
        if estimate is not None:
            data["estimated_start_unix_ms"] = estimate
        return _sse("position", data)


def _event_stream(what: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    """A resumable Server-Sent Events route's OpenAPI arguments: its 200 (``schema`` per event,
    as OpenAPI 3.1 describes text/event-stream: each event one object), the task routes' errors
    and a 429, and the ``Last-Event-ID`` header (checked by ``_last_event_id``) to resume after
    a ``what``."""
    return {
        "responses": {
            200: {
                "content": {"text/event-stream": {"schema": schema}},
                "description": description,
            },
            **_ERRORS,
            429: {"model": ErrorBody, "description": "MAX_WAITING requests wait already"},
        },
        "response_class": StreamingResponse,
        "openapi_extra": {
            "parameters": [
                {
                    "name": "Last-Event-ID",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string", "pattern": "^[0-9]{1,20}(-[0-9]{1,20})?$"},
                    "description": f"Resume after this {what} (browsers send it on reconnecting).",
                }
            ]
        },
    }


async def _stream_start(
    task_id: str, request: Request, dispatcher: Dispatcher
) -> tuple[str, TaskFollower, TaskStatus]:
    """What a resumable stream of ``task_id`` starts from, checked before it starts: where to
    resume (``_last_event_id``: a 422), the gateway's follower, the task's status (a 404) and
    room for one more waiting request (a 429)."""
    after = _last_event_id(request)
    follower: TaskFollower = request.app.state.follower
    status = await dispatcher.status(task_id)
    follower.check_room(status.model)
    return after, follower, status


@router.get(
    "/tasks/{task_id}/events",
    name="task_events",
    **_event_stream(
        "event",
        _EVENT_SCHEMA,
        "Server-Sent Events: queued (with position), position, started, progress, retrying, "
        "then done, failed or cancelled (the task's status), after which the stream closes.",
    ),
)
async def task_events(
    task_id: TaskId, request: Request, catalog: CatalogDep, dispatcher: DispatcherDep
) -> StreamingResponse:
    """Follow the task's life as Server-Sent Events; the stream closes after the final one."""
    after, follower, status = await _stream_start(task_id, request, dispatcher)
    stream = _EventStream(status, after, follower, dispatcher, catalog)
    return StreamingResponse(
        stream.__aiter__(), media_type="text/event-stream", headers=SSE_HEADERS
    )


def _last_event_id(request: Request) -> str:
    """The ``Last-Event-ID`` header, checked (422), or "0-0" (from the start)."""
    after = request.headers.get("last-event-id", "0-0")
    if not _EVENT_ID.fullmatch(after):
        raise InvalidRequest(
            "Last-Event-ID must be an event id as sent (<ms>-<n>)", field="Last-Event-ID"
        )
    return after


@router.get(
    "/tasks/{task_id}/stream",
    name="task_stream",
    **_event_stream(
        "piece",
        STREAM_EVENT_SCHEMA,
        "Server-Sent Events: the task's pieces so far, then the ones that come (each with its "
        "id), a restart where a new run streams again, then done (the task's status, as GET "
        "/tasks/{id}) or error, after which the stream closes. Works on any gateway, for any "
        "task (one that streamed nothing ends with done alone).",
    ),
)
async def task_stream(
    task_id: TaskId, request: Request, catalog: CatalogDep, dispatcher: DispatcherDep
) -> StreamingResponse:
    """Replay the pieces of a task (``POST /predict/{m}?mode=async&stream=true``, or a sync
    stream that timed out) and follow the rest as Server-Sent Events, after ``Last-Event-ID``."""
    after, follower, status = await _stream_start(task_id, request, dispatcher)
    return StreamingResponse(
        _task_pieces(dispatcher, catalog, follower, task_id, after, status.model),
        media_type="text/event-stream",
        headers=SSE_HEADERS,
    )


async def _task_pieces(
    dispatcher: Dispatcher,
    catalog: ModelCatalog,
    follower: TaskFollower,
    task_id: str,
    after: str,
    model: str,
) -> AsyncIterator[bytes]:
    items = with_keepalives(dispatcher.follow(task_id, after), KEEPALIVE_SECONDS)
    try:
        info = None
        async for item in items:
            if item is None:
                yield SSE_KEEPALIVE
            elif isinstance(item, StreamEnd):
                status = await dispatcher.status(task_id)
                state = await task_state(status, catalog, await follower.pending(status))
                if state.status == "done":
                    yield sse_end(state.model_dump(exclude_none=True))
                else:
                    yield sse_error({"error": {**_state_error(state), "task_id": task_id}})
                return
            elif isinstance(item, Chunk):
                if info is None:
                    status = await dispatcher.status(task_id)
                    info = await catalog.get(status.model, status.version or None)
                piece = render_response(item.payload, info.response_class, info.name)
                yield sse_chunk(item, piece)
            else:
                yield sse_restart(item)
    except ConveyorError as e:  # Redis went away, the task expired, the model is gone
        yield sse_error(error_event_body(e, model))
    except Exception:
        logger.exception("the stream of task %s failed", task_id)
        yield sse_error(error_body("internal", INTERNAL_ERROR_MESSAGE))
    finally:
        await items.aclose()


def _state_error(state: TaskState) -> dict[str, Any]:
    """The error of a task that failed or was cancelled, with its status and model."""
    error: dict[str, Any] = {"code": state.status}
    if state.error is not None:
        error = state.error.model_dump(exclude_none=True)
    error.setdefault("message", f"the task {state.status}")
    return {**error, "status": state.status, "model": state.model}


@router.delete(
    "/tasks/{task_id}",
    responses={
        **_ERRORS,
        409: {"model": ErrorBody, "description": "The task finished or is running"},
    },
    response_model_exclude_none=True,
)
async def cancel_task(
    task_id: TaskId, request: Request, catalog: CatalogDep, dispatcher: DispatcherDep
) -> TaskState:
    """Cancel a task that is still queued: a worker that receives it later skips it."""
    status = await dispatcher.cancel(task_id)
    follower: TaskFollower = request.app.state.follower
    return await task_state(status, catalog, await follower.pending(status))
