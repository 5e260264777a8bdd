"""In-memory stand-ins the worker's unit tests share: a delivery that records how it was settled,
and a task runner wired to no broker and no Redis (synchronous tasks need neither)."""

from __future__ import annotations

from typing import Any

from worker_base import Worker
from worker_base.execution import TaskRunner
from worker_base.retries import RetryScheduler
from worker_base.settle import Settler


class Channel:
    """An open channel."""

    is_closed = False


class Delivered:
    """A delivery of ``body`` that appends how it was settled to ``log``: ``ack``, ``requeue``,
    ``drop`` or ``reject``, followed by its tag when ``tagged`` (and ``multiple`` for a multiple
    ack)."""

    def __init__(
        self,
        log: list[str],
        tag: int = 1,
        tagged: bool = False,
        body: bytes = b"",
        content_type: str = "",
    ) -> None:
        self.log = log
        self.delivery_tag = tag
        self.tagged = tagged
        self.body = body
        self.content_type = content_type
        self.channel = Channel()
        self.redelivered = False
        self.headers: dict[str, Any] = {}

    def _record(self, what: str) -> None:
        self.log.append(f"{what} {self.delivery_tag}" if self.tagged else what)

    async def ack(self, multiple: bool = False) -> None:
        self._record("ack")
        if multiple:
            self.log[-1] += " multiple"

    async def nack(self, requeue: bool = True) -> None:
        self._record("requeue" if requeue else "drop")

    async def reject(self, requeue: bool = False) -> None:
        self._record("reject")


def task_runner(
    worker: Worker,
    settler: Settler,
    batching: tuple[int, float],
    retries: RetryScheduler | None = None,
) -> TaskRunner:
    """A runner for ``worker`` that settles through ``settler``; ``batching`` is (max batch size,
    max delay in seconds); without ``retries``, a retry has no lane to go to."""
    if retries is None:
        retries = RetryScheduler(None, settler, None, worker.metrics)  # type: ignore[arg-type]
    return TaskRunner(
        worker.scheduler,
        worker.executor,
        settler,
        None,  # type: ignore[arg-type]  # synchronous tasks: no claim, no Redis
        worker.metrics,
        batching,
        running_seconds=60,
        retries=retries,
    )
