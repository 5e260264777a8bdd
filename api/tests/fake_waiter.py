"""A stand-in for ``conveyor.waiter.ResultWaiter`` over in-memory futures, for tests that run the
gateway's dispatcher without Redis."""

from __future__ import annotations

import asyncio

from proto import task_pb2


class FakeWaiter:
    """The waiter's calls the dispatcher makes: ``register`` before publishing, ``wait``
    returns the result or None on a timeout (the task stays registered), ``discard`` stops
    expecting it. A test answers a task by resolving its future in ``futures``."""

    channel = "conveyor:reply:test"
    connected = True

    def __init__(self) -> None:
        self.futures: dict[str, asyncio.Future[task_pb2.TaskResult | None]] = {}

    def register(self, task_id: str) -> None:
        """Start expecting ``task_id``'s result: a new future in ``futures``."""
        self.futures[task_id] = asyncio.get_running_loop().create_future()

    def discard(self, task_id: str) -> None:
        """Stop expecting ``task_id``."""
        self.futures.pop(task_id, None)

    async def wait(self, task_id: str, seconds: float) -> task_pb2.TaskResult | None:
        """``task_id``'s result, or None when ``seconds`` pass first."""
        try:
            return await asyncio.wait_for(asyncio.shield(self.futures[task_id]), seconds)
        except TimeoutError:
            return None
