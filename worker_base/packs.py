"""The tasks of one ``TaskBatch`` message, settled together.

A gateway may carry several synchronous tasks in one fast-lane message (``TaskBatch``,
docs/protocol.md). The worker runs and stores them one by one like any other task, but the
broker knows only the message: it is acknowledged once every task in it is settled, and
returned to its queue when any of them asked to be (its result could not be stored). On the
redelivery the tasks already answered are not run again: their stored results are announced
again, as for any redelivered synchronous task.
"""

from __future__ import annotations

from aio_pika.abc import AbstractIncomingMessage

__all__ = ["Pack"]


class Pack:
    """One ``TaskBatch`` message and how many of its tasks are still open."""

    def __init__(self, message: AbstractIncomingMessage, tasks: int) -> None:
        self.message = message
        self.open = tasks
        self.requeue = False
        """Whether a settled task asked for the message to go back to its queue."""

    def settle(self, requeue: bool) -> bool:
        """Settle one task; True when it was the last open one (settle the message now)."""
        if self.open <= 0:
            raise RuntimeError("every task of this message is settled already")
        self.requeue = self.requeue or requeue
        self.open -= 1
        return self.open == 0
