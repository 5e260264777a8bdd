"""Packing the synchronous tasks that reach the gateway together into one fast-lane message.

RabbitMQ and the AMQP clients spend nearly all their work per message, not per byte (measured:
8 tasks to a message cost each side ~7x less a task than one each; docs/performance.md). So the
tasks for one model version and priority that the gateway publishes in the same turn of its
event loop leave as one ``TaskBatch`` message, up to ``MAX_TASKS_PER_MESSAGE`` of them; a task
alone leaves as a plain ``Task`` message, as before. Every caller waits for the one confirm and
gets its outcome (a nack, a return or an outage fails every task of the message alike).

The message expires with the latest of its tasks' deadlines; each task still carries its own
deadline, which the worker checks before running it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiormq import spec

from api.catalog import ModelInfo
from conveyor.protocol import MAX_TASKS_PER_MESSAGE, TASK_BATCH_CONTENT_TYPE, TASK_CONTENT_TYPE

__all__ = ["Send", "TaskPacker", "fast_lane_properties", "pack_bodies"]

_TRANSIENT = 1  # AMQP delivery mode
_TASKS_FIELD = b"\x0a"  # TaskBatch.tasks: field 1, length-delimited

Send = Callable[[ModelInfo, bytes, spec.Basic.Properties, str, float], Awaitable[None]]
"""Publishes one message (body, properties, queue, confirm timeout in seconds) for a model
version, raising the gateway's error for a failed publish."""


def fast_lane_properties(
    content_type: str, message_id: str | None, priority: int, seconds: float
) -> spec.Basic.Properties:
    """A fast-lane message's properties: transient, with the tasks' priority, expiring after
    ``seconds`` (the caller's deadline; at least a millisecond)."""
    return spec.Basic.Properties(
        content_type=content_type,
        delivery_mode=_TRANSIENT,
        message_id=message_id,
        priority=priority,
        expiration=str(max(int(seconds * 1000), 1)),  # milliseconds
    )


def pack_bodies(bodies: list[bytes]) -> bytes:
    """Serialize a ``TaskBatch`` of already serialized ``Task`` messages (protobuf's wire
    format for a repeated message field), without parsing them again."""
    parts: list[bytes] = []
    for body in bodies:
        parts.append(_TASKS_FIELD)
        parts.append(_varint(len(body)))
        parts.append(body)
    return b"".join(parts)


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


@dataclass
class _Pack:
    """Tasks waiting for the end of the loop's turn, for one queue and priority."""

    info: ModelInfo
    queue: str
    priority: int
    bodies: list[bytes] = field(default_factory=list)
    task_ids: list[str] = field(default_factory=list)
    waiters: list[asyncio.Future[None]] = field(default_factory=list)
    seconds: float = 0.0


class TaskPacker:
    """Collects synchronous tasks per (queue, priority) and publishes each group as one message."""

    def __init__(self, send: Send, max_tasks: int = MAX_TASKS_PER_MESSAGE) -> None:
        """``send`` publishes a message; ``max_tasks``: the most tasks in one message."""
        self._send = send
        self._max_tasks = max(1, max_tasks)
        self._open: dict[tuple[str, int], _Pack] = {}
        self._sending: set[asyncio.Task[None]] = set()

    async def publish(
        self, info: ModelInfo, queue: str, task_id: str, body: bytes, priority: int,
        seconds: float,
    ) -> None:  # fmt: skip
        """Publish a serialized task with the others of this turn; return once the broker
        confirmed the message holding it, or raise the publish's error."""
        loop = asyncio.get_running_loop()
        key = (queue, priority)
        pack = self._open.get(key)
        if pack is None:
            pack = self._open[key] = _Pack(info, queue, priority)
            loop.call_soon(self._flush, pack)
        waiter: asyncio.Future[None] = loop.create_future()
        pack.bodies.append(body)
        pack.task_ids.append(task_id)
        pack.waiters.append(waiter)
        pack.seconds = max(pack.seconds, seconds)
        if len(pack.bodies) >= self._max_tasks:
            self._flush(pack)
        await waiter

    def _flush(self, pack: _Pack) -> None:
        """Send ``pack`` unless it was sent already (full before the turn ended)."""
        key = (pack.queue, pack.priority)
        if self._open.get(key) is not pack:
            return
        del self._open[key]
        task = asyncio.get_running_loop().create_task(self._publish(pack))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _publish(self, pack: _Pack) -> None:
        single = len(pack.bodies) == 1
        properties = fast_lane_properties(
            TASK_CONTENT_TYPE if single else TASK_BATCH_CONTENT_TYPE,
            pack.task_ids[0] if single else None,
            pack.priority,
            pack.seconds,
        )
        body = pack.bodies[0] if single else pack_bodies(pack.bodies)
        try:
            await self._send(pack.info, body, properties, pack.queue, pack.seconds)
        except asyncio.CancelledError:
            for waiter in pack.waiters:
                waiter.cancel()
            raise
        except Exception as e:
            for waiter in pack.waiters:
                if not waiter.done():
                    waiter.set_exception(e)
            return
        for waiter in pack.waiters:
            if not waiter.done():
                waiter.set_result(None)
