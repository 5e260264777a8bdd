"""The result backend, used by both sides: workers store results and announce them; gateways
read, wait for and cancel them. Keys and channels are named in ``conveyor.protocol``.

Each operation that must not race is one Lua script, so it is atomic and one round trip:

- ``store``: ``SET result NX``; then publish on the task's reply channel whatever result is
  stored (ours, or the one that won), so a waiting gateway gets the result itself in the
  notification and need not read it back;
- ``claim``: a worker about to run an asynchronous task checks that no result exists yet (it
  may have been cancelled) and marks the task running;
- ``cancel``: a gateway stores a ``CANCELLED`` result unless a result exists or the task runs.

Where Redis has replicas, workers ask ``store_many`` to ``WAIT`` until a replica holds the
results before they acknowledge the tasks, so a failover to a replica loses no result. By
default (``"auto"``) they do so whenever the primary has a replica connected.
"""

from __future__ import annotations

import enum
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import redis.asyncio as aioredis
from google.protobuf.message import DecodeError
from redis.exceptions import NoScriptError

from conveyor.events import DONE, error_code, final_type
from conveyor.protocol import (
    CALLBACKS_STREAM,
    MAX_EVENTS,
    events_key,
    queue_counts_key,
    result_key,
    running_key,
    task_key,
)
from conveyor.stats import StatsDelta
from proto import task_pb2

__all__ = [
    "REPLICAS_CHECK_SECONDS",
    "CancelOutcome",
    "NotReplicated",
    "ResultBackend",
    "TaskRecord",
    "now_ms",
    "parse_result",
]

_STORE = """
local stored = redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2], 'NX')
local value = ARGV[1]
if not stored then value = redis.call('GET', KEYS[1]) end
if ARGV[3] ~= '' and value then redis.call('PUBLISH', ARGV[3], value) end
if stored then return 1 end
return 0
"""

# The store of a task someone follows (an asynchronous task: its event stream, its callback).
# KEYS: result, events stream, callbacks stream. ARGV: value, ttl, reply channel, final event
# type, error code, task id, callback url, '1' when the task has an event stream, stream bound.
_STORE_FINAL = """
local stored = redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2], 'NX')
local value = ARGV[1]
if not stored then value = redis.call('GET', KEYS[1]) end
if ARGV[3] ~= '' and value then redis.call('PUBLISH', ARGV[3], value) end
if not stored then return 0 end
if ARGV[8] == '1' then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[9], '*', 'type', ARGV[4], 'code', ARGV[5])
  redis.call('EXPIRE', KEYS[2], ARGV[2])
end
if ARGV[7] ~= '' then
  redis.call('XADD', KEYS[3], '*', 'task_id', ARGV[6], 'url', ARGV[7], 'status', ARGV[4])
end
return 1
"""

_REPUBLISH = """
local value = redis.call('GET', KEYS[1])
if value and ARGV[1] ~= '' then redis.call('PUBLISH', ARGV[1], value) end
if value then return 1 end
return 0
"""

# KEYS: result, running marker, events stream, the version's queue counts. ARGV: running
# seconds, '1' when the task has an event stream, attempt, worker id, stream bound.
_CLAIM = """
redis.call('HINCRBY', KEYS[4], 'started', 1)
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[2], '1', 'EX', ARGV[1])
if ARGV[2] == '1' then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', 'type', 'started',
             'attempt', ARGV[3], 'worker', ARGV[4])
end
return 1
"""

# KEYS: result, running marker, events stream, callbacks stream. ARGV: the CANCELLED result,
# ttl, '1' when the task has an event stream, callback url, task id, stream bound.
_CANCEL = """
local existing = redis.call('GET', KEYS[1])
if existing then return {1, existing} end
if redis.call('EXISTS', KEYS[2]) == 1 then return {2, ''} end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
if ARGV[3] == '1' then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[6], '*', 'type', 'cancelled',
             'code', 'cancelled')
  redis.call('EXPIRE', KEYS[3], ARGV[2])
end
if ARGV[4] ~= '' then
  redis.call('XADD', KEYS[4], '*', 'task_id', ARGV[5], 'url', ARGV[4], 'status', 'cancelled')
end
return {0, ''}
"""

# KEYS: the task's record, the version's queue counts, events stream. ARGV: record, ttl,
# stream bound. Answers the task's seq.
_SUBMIT = """
local seq = redis.call('HINCRBY', KEYS[2], 'submitted', 1)
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', 'type', 'queued', 'seq', seq)
redis.call('EXPIRE', KEYS[3], ARGV[2])
return seq
"""

# KEYS: the version's queue counts, events stream, running marker. ARGV: attempt that failed,
# delay ms, error code, message, stream bound. The task goes back in line (no longer running:
# it may be cancelled while it waits): answers its new seq.
_RETRYING = """
local seq = redis.call('HINCRBY', KEYS[1], 'submitted', 1)
redis.call('DEL', KEYS[3])
if KEYS[2] ~= '' then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', 'type', 'retrying', 'attempt',
             ARGV[1], 'delay_ms', ARGV[2], 'code', ARGV[3], 'message', ARGV[4], 'seq', seq)
end
return seq
"""


REPLICAS_CHECK_SECONDS = 1.0
"""How often ``store_many(replicas="auto")`` reads the primary's count of connected replicas."""


class NotReplicated(aioredis.RedisError):
    """Fewer replicas than required confirmed a stored result in time (Redis ``WAIT``).

    A ``RedisError``, so a worker treats it like an outage: it keeps the task unacknowledged
    and stores the result again until enough replicas hold it.
    """


def now_ms() -> int:
    """Return the current Unix time in milliseconds."""
    return int(time.time() * 1000)


def parse_result(raw: bytes | str, task_id: str) -> task_pb2.TaskResult:
    """Read a stored ``TaskResult``; a value that is not one reads as a ``BAD_TASK`` error."""
    if isinstance(raw, str):
        raw = raw.encode()
    result = task_pb2.TaskResult()
    try:
        result.ParseFromString(raw)
    except DecodeError:
        result.Clear()
        result.task_id = task_id
        result.error.code = task_pb2.TaskError.BAD_TASK
        result.error.message = "the stored result is not a conveyor.v1.TaskResult"
    return result


@dataclass(frozen=True)
class TaskRecord:
    """The gateway's record of a task: its model and version, when it came, its deadline, and
    for an asynchronous task whether it has an event stream and where its callback goes."""

    model: str
    version: str
    created_unix_ms: int
    deadline_unix_ms: int = 0
    events: bool = False
    callback_url: str = ""

    def dumps(self) -> str:
        """The record as stored (JSON)."""
        document: dict[str, Any] = {
            "model": self.model,
            "version": self.version,
            "created_unix_ms": self.created_unix_ms,
            "deadline_unix_ms": self.deadline_unix_ms,
        }
        if self.events:
            document["events"] = True
        if self.callback_url:
            document["callback_url"] = self.callback_url
        return json.dumps(document)

    @classmethod
    def loads(cls, raw: bytes | str) -> TaskRecord:
        """Read a stored record (also those of earlier releases, which had no version)."""
        document: dict[str, Any] = json.loads(raw)
        return cls(
            model=str(document["model"]),
            version=str(document.get("version", "")),
            created_unix_ms=int(document.get("created_unix_ms", 0)),
            deadline_unix_ms=int(document.get("deadline_unix_ms", 0)),
            events=bool(document.get("events", False)),
            callback_url=str(document.get("callback_url", "")),
        )


class CancelOutcome(enum.Enum):
    """What ``ResultBackend.cancel`` did."""

    CANCELLED = "cancelled"
    FINISHED = "finished"
    RUNNING = "running"


class ResultBackend:
    """``TaskResult`` messages in Redis: stored once, announced, read back, cancelled."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.redis = client
        self._store = client.register_script(_STORE)
        self._store_sha: str = self._store.sha
        self._store_final = client.register_script(_STORE_FINAL)
        self._submit = client.register_script(_SUBMIT)
        self._retrying = client.register_script(_RETRYING)
        self._republish = client.register_script(_REPUBLISH)
        self._claim = client.register_script(_CLAIM)
        self._cancel = client.register_script(_CANCEL)
        self._replicas = 0
        self._replicas_checked = -math.inf

    async def store(self, task: task_pb2.Task, result: task_pb2.TaskResult, ttl: int) -> bool:
        """Store ``result`` unless one exists, announce the stored one; True if ours was stored.

        The first stored result wins, so a task that ran twice (or was cancelled) completes once.
        """
        stored = await self._store(
            keys=[task.result_key],
            args=[result.SerializeToString(), task.result_ttl_seconds or ttl, task.reply_channel],
        )
        return bool(stored)

    async def store_many(
        self,
        items: Sequence[tuple[task_pb2.Task, task_pb2.TaskResult]],
        ttl: int,
        replicas: int | Literal["auto"] = 0,
        wait_ms: int = 1000,
        stats: StatsDelta | None = None,
    ) -> list[bool]:
        """``store`` for a batch, in one round trip.

        ``stats``, the statistics of the batch's tasks (``conveyor.stats``), are added in the
        same round trip unless they were ``written`` by an earlier one.

        With ``replicas`` > 0 the same round trip ends with ``WAIT replicas wait_ms``: it returns
        once that many replicas hold the results (or every connected replica, when fewer are
        connected), and raises ``NotReplicated`` when fewer did within ``wait_ms`` (the caller
        stores again; the first stored result still wins). ``"auto"`` waits for one replica
        whenever the primary has one connected (``connected_replicas``), and for none otherwise.
        """
        wanted = min(1, await self.connected_replicas()) if replicas == "auto" else replicas
        try:
            answers = await self._store_pipelined(items, ttl, wanted, wait_ms, stats)
        except NoScriptError:  # Redis restarted or flushed its scripts: load them, once more
            await self.redis.script_load(_STORE)
            await self.redis.script_load(_STORE_FINAL)
            self._store_sha = self._store.sha
            answers = await self._store_pipelined(items, ttl, wanted, wait_ms, stats)
        if wanted > 0:
            acknowledged = int(answers.pop())
            if acknowledged < wanted:
                # Waiting for replicas that are gone would stop every worker: with fewer
                # connected (a failover promoted the only replica), all connected ones suffice.
                info = await self.redis.info("replication")
                connected = int(info.get("connected_slaves", 0))
                if acknowledged < min(wanted, connected):
                    raise NotReplicated(
                        f"{acknowledged} of {min(wanted, connected)} replicas acknowledged "
                        f"within {wait_ms} ms"
                    )
        return [bool(stored) for stored in answers]

    async def connected_replicas(self) -> int:
        """How many replicas the primary has connected, from ``INFO replication``, read at most
        once every ``REPLICAS_CHECK_SECONDS`` (a replica that connects or goes is seen within
        that time; a failover's new primary too, as the client follows it)."""
        now = time.monotonic()
        if now >= self._replicas_checked + REPLICAS_CHECK_SECONDS:
            info = await self.redis.info("replication")
            self._replicas = int(info.get("connected_slaves", 0))
            self._replicas_checked = now
        return self._replicas

    async def _store_pipelined(
        self,
        items: Sequence[tuple[task_pb2.Task, task_pb2.TaskResult]],
        ttl: int,
        replicas: int,
        wait_ms: int,
        stats: StatsDelta | None = None,
    ) -> list[Any]:
        """The store script for each item by its SHA (``EVALSHA``), the statistics, and
        ``WAIT``, in one round trip; answers the scripts' and ``WAIT``'s replies (a lone result
        with nothing else to send is the one command, no pipeline). A registered script run in a
        pipeline would first cost a ``SCRIPT EXISTS`` round trip of its own on every call."""
        if len(items) == 1 and replicas == 0 and (stats is None or stats.written):
            task, result = items[0]
            if not (task.events_key or task.callback_url):  # one command: no pipeline to build
                return [await self.store(task, result, ttl)]
        async with self.redis.pipeline(transaction=False) as pipe:
            for task, result in items:
                if task.events_key or task.callback_url:
                    self._queue_final(pipe, task, result, ttl)
                    continue
                pipe.evalsha(
                    self._store_sha,
                    1,
                    task.result_key,
                    result.SerializeToString(),
                    task.result_ttl_seconds or ttl,
                    task.reply_channel,
                )
            counted = 0
            if stats is not None and not stats.written:
                counted = stats.queue_onto(pipe)
            if replicas > 0:
                # WAIT counts the writes of its own connection: it must share the pipeline's.
                pipe.execute_command("WAIT", replicas, wait_ms)
            try:
                answers: list[Any] = await pipe.execute()
            except aioredis.ResponseError:
                # Redis ran every command and one failed (an unknown script): the statistics
                # are added; the caller stores the results again without them.
                if counted and stats is not None:
                    stats.written = True
                raise
        if counted and stats is not None:
            stats.written = True
            del answers[len(items) : len(items) + counted]
        return answers

    def _queue_final(
        self, pipe: Any, task: task_pb2.Task, result: task_pb2.TaskResult, ttl: int
    ) -> None:
        """Queue the store of a followed task: its result, final event and callback at once."""
        kind = final_type(result)
        pipe.evalsha(
            self._store_final.sha,
            3,
            task.result_key,
            task.events_key or task.result_key,
            CALLBACKS_STREAM,
            result.SerializeToString(),
            task.result_ttl_seconds or ttl,
            task.reply_channel,
            kind,
            error_code(result.error) if kind != DONE else "",
            task.task_id,
            task.callback_url,
            "1" if task.events_key else "",
            MAX_EVENTS,
        )

    async def republish(self, task: task_pb2.Task) -> bool:
        """Announce the stored result again (a redelivered task); False if there is none."""
        return bool(await self._republish(keys=[task.result_key], args=[task.reply_channel]))

    async def claim(self, task: task_pb2.Task, running_seconds: int, worker_id: str = "") -> bool:
        """Mark an asynchronous task running; False if it has a result already (e.g. cancelled).

        Either way the task counts as ``started`` for its version's positions; a claimed task
        with an event stream gets its ``started`` event."""
        claimed = await self._claim(
            keys=[
                task.result_key,
                running_key(task.task_id),
                task.events_key or task.result_key,
                queue_counts_key(task.model, task.version),
            ],
            args=[
                running_seconds,
                "1" if task.events_key else "",
                task.attempt or 1,
                worker_id,
                MAX_EVENTS,
            ],
        )
        return bool(claimed)

    async def submit(self, task_id: str, record: TaskRecord, ttl_seconds: int) -> int:
        """Record an asynchronous task, start its event stream with ``queued``; answers its
        place in its version's submit order (``conveyor.events``)."""
        seq = await self._submit(
            keys=[
                task_key(task_id),
                queue_counts_key(record.model, record.version),
                events_key(task_id),
            ],
            args=[record.dumps(), ttl_seconds, MAX_EVENTS],
        )
        return int(seq)

    async def retrying(self, task: task_pb2.Task, error: task_pb2.TaskError, delay_ms: int) -> int:
        """Note that ``task`` failed retryably and goes back in line after ``delay_ms``: a
        ``retrying`` event, and a new place in its version's submit order (answered)."""
        seq = await self._retrying(
            keys=[
                queue_counts_key(task.model, task.version),
                task.events_key,
                running_key(task.task_id),
            ],
            args=[task.attempt or 1, delay_ms, error_code(error), error.message, MAX_EVENTS],
        )
        return int(seq)

    async def cancel(
        self,
        task_id: str,
        result: task_pb2.TaskResult,
        ttl: int,
        record: TaskRecord | None = None,
    ) -> tuple[CancelOutcome, task_pb2.TaskResult | None]:
        """Store ``result`` (a ``CANCELLED`` error) unless the task finished or is running; with
        the task's ``record``, also its final event and callback.

        Returns the outcome and, when it had finished, its stored result.
        """
        events = record is not None and record.events
        code, existing = await self._cancel(
            keys=[result_key(task_id), running_key(task_id), events_key(task_id), CALLBACKS_STREAM],
            args=[
                result.SerializeToString(),
                ttl,
                "1" if events else "",
                record.callback_url if record is not None else "",
                task_id,
                MAX_EVENTS,
            ],
        )
        if int(code) == 1:
            return CancelOutcome.FINISHED, parse_result(existing, task_id)
        if int(code) == 2:
            return CancelOutcome.RUNNING, None
        return CancelOutcome.CANCELLED, None

    async def read(self, task_id: str) -> task_pb2.TaskResult | None:
        """Return the stored result of ``task_id``, or None while there is none."""
        raw = await self.redis.get(result_key(task_id))
        return None if raw is None else parse_result(raw, task_id)

    async def record_task(self, task_id: str, record: TaskRecord, ttl_seconds: int) -> None:
        """Remember a task's model and version, so a poll can say ``pending``."""
        await self.redis.set(task_key(task_id), record.dumps(), ex=ttl_seconds)

    async def status(self, task_id: str) -> tuple[TaskRecord | None, task_pb2.TaskResult | None]:
        """The task's record and result, each None when absent, in one round trip."""
        record, result = await self.redis.mget(task_key(task_id), result_key(task_id))
        return (
            None if record is None else TaskRecord.loads(record),
            None if result is None else parse_result(result, task_id),
        )
