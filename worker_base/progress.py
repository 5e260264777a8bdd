"""Progress a model reports while it runs a task: ``Model.report_progress`` appends a
``progress`` event to the stream of each task the current model call serves
(``conveyor.events``), where ``GET /tasks/{id}`` and ``GET /tasks/{id}/events`` read it.

The executor names the tasks of the call it makes (``serving``); a report outside a model call,
or for tasks nobody follows (synchronous ones), writes nothing. A report that cannot be written
(Redis away) is logged and dropped: progress never fails a task.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator, Sequence
from contextvars import ContextVar

import redis.asyncio as aioredis

from conveyor.events import report_progress
from proto import task_pb2

__all__ = ["report", "serving"]

logger = logging.getLogger(__name__)

_serving: ContextVar[tuple[aioredis.Redis, Sequence[task_pb2.Task]] | None] = ContextVar(
    "conveyor_progress", default=None
)


@contextlib.contextmanager
def serving(client: aioredis.Redis | None, tasks: Sequence[task_pb2.Task]) -> Iterator[None]:
    """While the block runs (a model call), reports go to the streams of ``tasks``."""
    followed = [task for task in tasks if task.events_key]
    if client is None or not followed:
        yield
        return
    token = _serving.set((client, followed))
    try:
        yield
    finally:
        _serving.reset(token)


async def report(fraction: float | None, message: str) -> None:
    """Append a progress event to each task of the current model call (see the module doc).

    ``fraction`` is how much is done, from 0 to 1 (None: unknown); ``message`` a short text.
    Raises ``ValueError`` for a fraction outside [0, 1].
    """
    if fraction is not None and not (math.isfinite(fraction) and 0.0 <= fraction <= 1.0):
        raise ValueError(f"progress must be between 0 and 1, not {fraction!r}")
    current = _serving.get()
    if current is None:
        return
    client, tasks = current
    text = message[:1000]
    for task in tasks:
        try:
            await report_progress(client, task, fraction, text)
        except (aioredis.RedisError, OSError) as e:
            logger.warning("progress of task %s not written: %s", task.task_id, e)
