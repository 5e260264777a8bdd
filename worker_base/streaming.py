"""One run of a streamed task (``Task.stream``): the model's ``process_stream``, each piece
appended to the task's event stream and pushed to its gateway as it is yielded.

``StreamRun.run`` drives the model's generator and hands each piece to the worker's
``ChunkFlusher`` with its place in the run (0, 1, ...). It keeps up with the writes: once
``STREAM_WINDOW`` pieces of the run are not yet appended it waits for the oldest, so a model
yielding faster than Redis takes pieces waits at its ``yield`` and nothing grows without bound.
The run ends, the generator closed (``aclose``), when

- the model's stream ends: the answer is the pieces combined (``Model.combine``);
- an append answers that the gateway set the task's stop key (its client went away):
  ``StreamStopped`` (the task ends ``CANCELLED``); a stop answered after the last piece changes
  nothing, the stream was whole;
- the model yields more than ``max_chunks`` pieces: ``StreamTooLong`` (``MODEL_ERROR``);
- the task's deadline passes: ``StreamDeadline`` (``DEADLINE_EXCEEDED``);
- the model raises: its exception, as ``process_request``'s would be (``InvalidRequest``,
  retryable or not);
- a piece cannot be appended: ``ChunkWriteFailed``, not the model's failure (the runner returns
  the task to its queue: the next run restarts the stream).

Whichever way it ends, every piece handed over is appended (or failed) before it returns or
raises, so the task's result, stored after, comes after its last piece in the event stream
and on the channels.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass

from google.protobuf.message import Message

from conveyor.metrics import WorkerMetrics
from conveyor.streams import AppendOutcome, ChunkAppend
from proto import task_pb2
from worker_base.chunk_flush import ChunkFlusher, ChunkWriteFailed
from worker_base.exceptions import WorkerError
from worker_base.model import Model

__all__ = [
    "STREAM_WINDOW",
    "StreamDeadline",
    "StreamRun",
    "StreamStopped",
    "StreamTooLong",
]

logger = logging.getLogger(__name__)

STREAM_WINDOW = 32
"""Pieces of one run handed over and not yet appended before the model waits at its ``yield``."""


class StreamStopped(WorkerError):
    """The gateway asked the stream to stop (its client went away)."""

    code = "cancelled"


class StreamTooLong(WorkerError):
    """The model yielded more pieces than the worker's ``MAX_STREAM_CHUNKS``."""

    code = "model_error"


class StreamDeadline(WorkerError):
    """The task's deadline passed while the model streamed."""

    code = "deadline_exceeded"


@dataclass(frozen=True)
class StreamRun:
    """Runs streamed tasks of ``model`` (see the module doc); ``metrics`` counts their pieces
    and the streams stopped."""

    model: Model
    flusher: ChunkFlusher
    max_chunks: int
    metrics: WorkerMetrics | None = None
    window: int = STREAM_WINDOW

    async def run(self, task: task_pb2.Task) -> Message:
        """Run ``task``'s stream; returns the pieces combined (see the module doc for what it
        raises)."""
        expected = self.model.get_response_format().full_name
        pieces: list[Message] = []
        unanswered: collections.deque[asyncio.Future[AppendOutcome]] = collections.deque()
        stream = self.model.process_stream(task.payload)
        timer = _until(task.deadline_unix_ms)
        try:
            try:
                async with timer:
                    async for piece in stream:
                        # The answers so far first: after a stop, not one more piece.
                        await self._keep_up(unanswered)
                        if not isinstance(piece, Message) or piece.DESCRIPTOR.full_name != expected:
                            name = getattr(getattr(piece, "DESCRIPTOR", None), "full_name", None)
                            raise TypeError(
                                f"model yielded {name or type(piece).__name__}, expected {expected}"
                            )
                        if len(pieces) >= self.max_chunks:
                            raise StreamTooLong(
                                f"the model yielded more than MAX_STREAM_CHUNKS "
                                f"({self.max_chunks}) pieces"
                            )
                        item = ChunkAppend(task, piece.SerializeToString(), len(pieces))
                        pieces.append(piece)
                        unanswered.append(self.flusher.add(item))
                        # The piece leaves now (the flusher's turn), not when the model waits.
                        await asyncio.sleep(0)
            except TimeoutError:
                if timer.expired():
                    raise StreamDeadline(
                        f"the deadline passed while the model streamed ({len(pieces)} pieces)"
                    ) from None
                raise
        except BaseException as e:
            await _close(stream)
            self._count_stop(e)
            if not isinstance(e, asyncio.CancelledError):
                await self._drain(unanswered, task)
            raise
        finally:
            if self.metrics is not None and pieces:
                self.metrics.stream_chunks.inc(len(pieces))
        await self._drain(unanswered, task)
        return self.model.combine(pieces)

    async def _keep_up(self, unanswered: collections.deque[asyncio.Future[AppendOutcome]]) -> None:
        """Read the answers in; wait for the oldest while ``window`` are out (so one more can
        be handed over). Raises ``StreamStopped`` at the first that asks to stop."""
        while unanswered and (unanswered[0].done() or len(unanswered) >= self.window):
            outcome = await unanswered.popleft()
            if outcome.stop:
                raise StreamStopped("the client stopped the stream")

    async def _drain(
        self, unanswered: collections.deque[asyncio.Future[AppendOutcome]], task: task_pb2.Task
    ) -> None:
        """Wait until every piece handed over is appended (its stop answer no longer matters);
        raises ``ChunkWriteFailed`` when one could not be."""
        try:
            outcomes = await asyncio.gather(*unanswered, return_exceptions=True)
        finally:
            unanswered.clear()
            self.flusher.discard(task.task_id)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise ChunkWriteFailed(f"a piece of task {task.task_id} was not appended") from (
                    outcome
                )

    def _count_stop(self, error: BaseException) -> None:
        if self.metrics is None:
            return
        reason = _STOP_REASONS.get(type(error))
        if reason is not None:
            self.metrics.streams_stopped[reason].inc()


_STOP_REASONS: dict[type[BaseException], str] = {
    StreamStopped: "client",
    StreamDeadline: "deadline",
    StreamTooLong: "limit",
}


def _until(deadline_unix_ms: int) -> asyncio.Timeout:
    """A timeout at the task's deadline (none without one)."""
    if not deadline_unix_ms:
        return asyncio.timeout(None)
    remaining = (deadline_unix_ms - time.time() * 1000) / 1000
    return asyncio.timeout(max(remaining, 0.0))


async def _close(stream: AsyncIterator[Message]) -> None:
    """Close the model's generator (its ``finally`` blocks run); a generator that will not stop
    is logged."""
    if not isinstance(stream, AsyncGenerator):
        return
    try:
        await stream.aclose()
    except Exception:
        logger.exception("the model's stream failed while it was closed")
