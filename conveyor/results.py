"""The result backend, used by both sides: workers store results and notify; gateways read them.

Keys and channels are named in ``conveyor.protocol``; docs/protocol.md has the rules.
"""

import json
import time
from dataclasses import dataclass

import redis.asyncio as aioredis
from google.protobuf.message import DecodeError

from conveyor.protocol import result_key, task_key
from proto import task_pb2

__all__ = ["ResultBackend", "TaskRecord", "now_ms"]


def now_ms() -> int:
    """Return the current Unix time in milliseconds."""
    return int(time.time() * 1000)


@dataclass(frozen=True)
class TaskRecord:
    """The gateway's record of a submitted task: which model it is for, and when it came."""

    model: str
    created_unix_ms: int


class ResultBackend:
    """``TaskResult`` messages in Redis: stored once, read back, announced on a channel."""

    def __init__(self, client: "aioredis.Redis") -> None:
        self.redis = client

    async def store(
        self, task: task_pb2.Task, result: task_pb2.TaskResult, default_ttl: int
    ) -> bool:
        """Store ``result`` unless one exists already, then notify; return True if stored.

        The first stored result wins, so a task that ran twice still completes once.
        The notification is sent either way: a waiter may have missed the first one.
        """
        ttl = task.result_ttl_seconds or default_ttl
        stored = await self.redis.set(task.result_key, result.SerializeToString(), ex=ttl, nx=True)
        await self.notify(task)
        return bool(stored)

    async def exists(self, task: task_pb2.Task) -> bool:
        """Return True when a result for ``task`` is already stored."""
        return bool(await self.redis.exists(task.result_key))

    async def notify(self, task: task_pb2.Task) -> None:
        """Publish the task id on the task's reply channel, if it names one."""
        if task.reply_channel:
            await self.redis.publish(task.reply_channel, task.task_id)

    async def read(self, task_id: str) -> task_pb2.TaskResult | None:
        """Return the stored result of ``task_id``, or None while there is none.

        A stored value that is not a ``TaskResult`` reads as a ``BAD_TASK`` error result.
        """
        raw = await self.redis.get(result_key(task_id))
        if raw is None:
            return None
        if isinstance(raw, str):
            raw = raw.encode()
        result = task_pb2.TaskResult()
        try:
            result.ParseFromString(raw)
        except DecodeError:
            result.task_id = task_id
            result.error.code = task_pb2.TaskError.BAD_TASK
            result.error.message = "the stored result is not a conveyor.v1.TaskResult"
        return result

    async def record_task(self, task_id: str, record: TaskRecord, ttl_seconds: int) -> None:
        """Remember which model ``task_id`` is for, so a poll can say ``pending``."""
        value = json.dumps({"model": record.model, "created_unix_ms": record.created_unix_ms})
        await self.redis.set(task_key(task_id), value, ex=ttl_seconds)

    async def task_record(self, task_id: str) -> TaskRecord | None:
        """Return the record of ``task_id``, or None if it is unknown or expired."""
        raw = await self.redis.get(task_key(task_id))
        if raw is None:
            return None
        document = json.loads(raw)
        return TaskRecord(
            model=str(document["model"]), created_unix_ms=int(document["created_unix_ms"])
        )
