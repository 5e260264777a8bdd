"""A synchronous streamed task as the protocols without a restart marker see it.

``Dispatcher.stream`` (``api.streaming``) yields a task's pieces (``Chunk``), a ``Restart``
when a worker died and another runs the task again from its first piece, and one end (the
``StreamEnd``, with the task's result). The gateway's own SSE shows a restart as an event; the
OpenAI format, the generate extension's SSE and gRPC's ``ModelStreamInfer`` have none. For them
``seamless`` hides it: a new run starts from the first piece with the same request (the same
seed), so it yields the pieces already sent again; those are checked against what was sent
(a digest of each) and skipped, and the stream goes on with the first new piece. A run that
yields something else (another piece where one was sent, or fewer pieces than were sent) ends
the stream with ``StreamDiverged``: what the client holds can no longer be completed.

``started`` awaits a stream's first item before anything is sent to the client, so that what
``Dispatcher.stream`` raises before its first item (an overloaded queue, no worker, Redis
away) is still answered as a plain error with its status.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Protocol

from api.exceptions import GatewayError
from conveyor.streams import Chunk, Restart
from proto import task_pb2

__all__ = [
    "StreamDiverged",
    "StreamEndView",
    "StreamItem",
    "Streamer",
    "close",
    "seamless",
    "started",
]


class StreamEndView(Protocol):
    """The end of a stream (``api.streaming.StreamEnd``): the task's result, its response the
    pieces combined when it is done, else its error."""

    @property
    def result(self) -> task_pb2.TaskResult: ...


StreamItem = Chunk | Restart | StreamEndView
"""What a stream yields: pieces and restart markers, then one end."""


class Streamer(Protocol):
    """The gateway's dispatcher as the streaming protocols use it (``api.dispatch``)."""

    def stream(
        self,
        info: object,
        payload: bytes,
        *,
        seconds: float,
        priority: int = 0,
        request_id: str = "",
        max_retries: int | None = None,
    ) -> AsyncIterator[StreamItem]:
        """A synchronous streamed task on ``info`` (the object the catalog resolved): its
        pieces as they come, then one end; errors before the first item raise at the first
        ``__anext__``; closing it (``aclose``) before the end asks the worker to stop."""
        ...


class StreamDiverged(GatewayError):
    """A run of a task restarted after a worker died yielded other pieces than the run the
    client read from: the stream cannot go on without a restart marker."""

    code = "stream_diverged"


async def close(items: AsyncIterator[object]) -> None:
    """Close a stream (its ``aclose``, when it has one): the dispatcher then asks the worker to
    stop, if the task still runs."""
    aclose = getattr(items, "aclose", None)
    if aclose is not None:
        await aclose()


async def started(items: AsyncIterator[StreamItem]) -> AsyncIterator[StreamItem]:
    """``items`` once its first item is there (what the stream raises before it raises here,
    and the stream is closed); closing the result closes ``items``."""
    try:
        first = await anext(items)
    except StopAsyncIteration:
        return _empty()
    except BaseException:
        await close(items)
        raise
    return _chain(first, items)


async def _empty() -> AsyncIterator[StreamItem]:
    return
    yield  # an async generator that yields nothing


async def _chain(first: StreamItem, items: AsyncIterator[StreamItem]) -> AsyncIterator[StreamItem]:
    try:
        yield first
        async for item in items:
            yield item
    finally:
        await close(items)


def _digest(payload: bytes) -> bytes:
    return hashlib.blake2b(payload, digest_size=16).digest()


async def seamless(
    items: AsyncIterator[StreamItem], model: str | None = None
) -> AsyncIterator[Chunk | StreamEndView]:
    """``items`` without restart markers: the pieces a restarted run yields again are checked
    and skipped (see the module doc); raise ``StreamDiverged`` when they differ. Yields each
    piece once, in order, then the end. Closing the result closes ``items``.

    Memory: a 16-byte digest per piece sent (at most ``MAX_STREAM_CHUNKS`` of them)."""
    sent: list[bytes] = []
    replayed: int | None = None  # pieces of the current run checked again, after a restart
    try:
        async for item in items:
            if isinstance(item, Restart):
                replayed = 0
                continue
            if isinstance(item, Chunk):
                if replayed is not None and replayed < len(sent):
                    if _digest(item.payload) != sent[replayed]:
                        raise StreamDiverged(
                            f"a worker died mid-stream and the task's new run yielded another "
                            f"piece {replayed} than the one sent; the stream ends here",
                            model=model,
                        )
                    replayed += 1
                    continue
                replayed = None  # past what was sent: new pieces
                sent.append(_digest(item.payload))
                yield item
                continue
            outcome = item.result.WhichOneof("outcome")
            if outcome == "response" and replayed is not None and replayed < len(sent):
                raise StreamDiverged(
                    f"a worker died mid-stream and the task's new run yielded {replayed} pieces, "
                    f"fewer than the {len(sent)} sent; the stream ends here",
                    model=model,
                )
            yield item
            return
    finally:
        await close(items)
