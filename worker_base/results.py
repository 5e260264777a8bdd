"""Storing task results in Redis and notifying the waiting gateway."""

import time

import redis.asyncio as aioredis

from proto import task_pb2


def now_ms() -> int:
    """Return the current Unix time in milliseconds."""
    return int(time.time() * 1000)


class ResultStore:
    """Writes ``TaskResult`` messages where a ``Task`` says, then publishes the task id."""

    def __init__(self, client: "aioredis.Redis") -> None:
        self._redis = client

    async def exists(self, task: task_pb2.Task) -> bool:
        """Return True when a result for ``task`` is already stored."""
        return bool(await self._redis.exists(task.result_key))

    async def store(
        self, task: task_pb2.Task, result: task_pb2.TaskResult, default_ttl: int
    ) -> bool:
        """Store ``result`` unless one exists already, then notify; return True if stored.

        The first stored result wins, so a task that ran twice still completes once.
        The notification is sent either way: a waiter may have missed the first one.
        """
        ttl = task.result_ttl_seconds or default_ttl
        stored = await self._redis.set(task.result_key, result.SerializeToString(), ex=ttl, nx=True)
        await self.notify(task)
        return bool(stored)

    async def notify(self, task: task_pb2.Task) -> None:
        """Publish the task id on the task's reply channel, if it names one."""
        if task.reply_channel:
            await self._redis.publish(task.reply_channel, task.task_id)
