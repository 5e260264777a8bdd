"""Following asynchronous tasks: where a pending one stands, its events, and waiting for them.

A task submitted asynchronously has an event stream (``conveyor.events``). ``TaskFollower``
reads it for ``GET /tasks/{id}`` (stage, position, estimated start, progress) and the callback
state the delivery service keeps; it also blocks on the stream for ``?wait=`` and
``GET /tasks/{id}/events``.

Blocking reads hold a Redis connection each, so they use a client of their own (at most
``MAX_WAITING`` of them at once; more are refused with a 429), and a request that waits is
parked: it does not count against ``MAX_INFLIGHT`` while it waits, holding no queue slot.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from api.dispatch import TaskStatus
from api.drain import DrainRates
from api.edge import Admission
from api.exceptions import Overloaded, ServiceUnavailable
from api.schemas import CallbackState, Progress
from conveyor.events import PROGRESS, QUEUED, RETRYING, TaskEvent, parse_entries
from conveyor.protocol import callback_key, events_key, queue_counts_key

__all__ = ["Pending", "TaskFollower"]

_REDIS_ERRORS = (aioredis.RedisError, OSError)
_STAGES = {QUEUED: "queued", RETRYING: "retrying"}
MAX_BLOCK_MS = 4000
"""The longest one blocking read waits (callers loop): below the Redis client's socket
timeout, so a quiet stream is never mistaken for a dead connection."""
MAX_READ = 100
"""The most events one read answers (callers read on after the last one)."""


@dataclass(frozen=True)
class Pending:
    """What the stream and counters say of a task beyond its result."""

    stage: str | None = None
    position: int | None = None
    estimated_start_unix_ms: int | None = None
    progress: Progress | None = None
    attempt: int | None = None
    callback: CallbackState | None = None
    last_event: TaskEvent | None = None


def _decode(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _callback(raw: Mapping[Any, Any], url: str, ended: bool) -> CallbackState:
    """The delivery state hash as shown; none yet: ``waiting`` for the task's end, or
    ``pending`` (its first delivery is under way)."""
    fields = {_decode(k): _decode(v) for k, v in raw.items()}

    def number(name: str) -> int | None:
        value = fields.get(name, "")
        return int(value) if value.isdigit() else None

    state = fields.get("state") or ("pending" if ended else "waiting")
    if state not in ("pending", "delivered", "undeliverable"):
        state = "pending" if ended else "waiting"
    return CallbackState(
        url=fields.get("url") or url,
        state=state,  # type: ignore[arg-type]
        attempts=number("attempts") or 0,
        last_error=fields.get("last_error") or None,
        delivered_unix_ms=number("delivered_unix_ms"),
        next_attempt_unix_ms=number("next_attempt_unix_ms"),
    )


class TaskFollower:
    """Reads and waits on tasks' event streams (see the module doc)."""

    def __init__(
        self,
        client: aioredis.Redis,
        blocking: aioredis.Redis,
        rates: DrainRates,
        admission: Admission | None,
        max_waiting: int,
        retry_after: int = 1,
    ) -> None:
        """``client`` serves short reads; ``blocking`` the reads that wait (its own pool)."""
        self._redis = client
        self._blocking = blocking
        self.rates = rates
        self._admission = admission
        self.max_waiting = max_waiting
        self.waiting = 0
        self._retry_after = retry_after

    async def pending(self, status: TaskStatus) -> Pending:
        """The task's stage, position, estimate, progress and callback (all None for a task
        that has no stream nor callback, such as a synchronous one)."""
        record = status.record
        if record is None or not (record.events or record.callback_url):
            return Pending()
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.xrevrange(events_key(status.task_id), count=1)
                pipe.hgetall(callback_key(status.task_id))
                pipe.hget(queue_counts_key(status.model, status.version), "started")
                entries, callback_raw, started = await pipe.execute()
        except _REDIS_ERRORS as e:
            raise self._redis_down(e) from e
        events = parse_entries(entries)
        last = events[0] if events else None
        callback = None
        if record.callback_url:
            callback = _callback(callback_raw, record.callback_url, status.result is not None)
        if status.result is not None or last is None:
            return Pending(callback=callback, last_event=last)
        return self._where(status, last, int(started or 0), callback)

    def _where(
        self, status: TaskStatus, last: TaskEvent, started: int, callback: CallbackState | None
    ) -> Pending:
        if last.type in _STAGES:
            seq = last.fields.get("seq", "")
            position = max(0, int(seq) - started - 1) if seq.isdigit() else None
            estimate = None
            rate = self.rates.rate(status.model, status.version)
            if position is not None and rate:
                estimate = int(time.time() * 1000 + position / rate * 1000)
            return Pending(
                stage=_STAGES[last.type],
                position=position,
                estimated_start_unix_ms=estimate,
                callback=callback,
                last_event=last,
            )
        progress = None
        if last.type == PROGRESS:
            raw = last.fields.get("fraction", "")
            progress = Progress(
                fraction=float(raw) if raw else None,
                message=last.fields.get("message", ""),
                unix_ms=last.unix_ms,
            )
        attempt = last.fields.get("attempt", "")
        return Pending(
            stage="running",
            progress=progress,
            attempt=int(attempt) if attempt.isdigit() else None,
            callback=callback,
            last_event=last,
        )

    async def position(self, model: str, version: str, seq: int) -> tuple[int | None, int | None]:
        """A queued task's position (tasks ahead) and estimated start (Unix ms), from its
        ``seq``; None where unknown."""
        try:
            started = await self._redis.hget(queue_counts_key(model, version), "started")
        except _REDIS_ERRORS as e:
            raise self._redis_down(e) from e
        position = max(0, seq - int(started or 0) - 1)
        rate = self.rates.rate(model, version)
        estimate = int(time.time() * 1000 + position / rate * 1000) if rate else None
        return position, estimate

    async def events_after(
        self, task_id: str, after: str, block_ms: int, count: int = MAX_READ
    ) -> list[TaskEvent]:
        """The task's first ``count`` events after id ``after`` ("0-0": all), waiting up to
        ``block_ms`` (at most ``MAX_BLOCK_MS``) for one when there is none yet (0: no wait)."""
        block_ms = min(block_ms, MAX_BLOCK_MS)
        try:
            if block_ms <= 0:
                entries = await self._redis.xrange(
                    events_key(task_id), min=f"({after}", count=count
                )
                return parse_entries(entries)
            reply = await self._blocking.xread(
                {events_key(task_id): after}, count=count, block=block_ms
            )
        except _REDIS_ERRORS as e:
            raise self._redis_down(e) from e
        return parse_entries(_xread_entries(reply)) if reply else []

    def check_room(self, model: str | None = None) -> None:
        """Raise ``Overloaded`` (429) when ``MAX_WAITING`` requests wait already."""
        if self.waiting >= self.max_waiting:
            raise Overloaded(
                f"the gateway has its limit of {self.max_waiting} requests waiting for tasks; "
                "retry later",
                model=model,
                retry_after=self._retry_after,
            )

    @contextlib.asynccontextmanager
    async def parked(self) -> AsyncIterator[None]:
        """Hold a waiting place (``check_room`` first); meanwhile the request does not count
        against ``MAX_INFLIGHT``."""
        self.waiting += 1
        admission = self._admission
        if admission is not None:
            admission.inflight -= 1
        try:
            yield
        finally:
            self.waiting -= 1
            if admission is not None:
                admission.inflight += 1

    def _redis_down(self, error: Exception) -> ServiceUnavailable:
        return ServiceUnavailable(
            f"Redis is unreachable: {type(error).__name__}",
            dependency="redis",
            retry_after=self._retry_after,
        )


def _xread_entries(reply: Any) -> list[Any]:
    """The entries of an ``XREAD`` answer, as RESP2 (``[[key, entries]]``) or RESP3
    (``{key: [entries]}``) gives them."""
    if isinstance(reply, dict):
        return [entry for value in reply.values() for entry in value[0]]
    return [entry for _, entries in reply for entry in entries]
