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
away) is still answered as a plain error with its status; a client that goes away meanwhile
stops the generation then (``ClientGone``).

``sse_answer`` is the tail the protocols' Server-Sent Events share (the OpenAI-compatible
endpoints and the generate extension; predict's own SSE shows restarts): ``started``, then
``seamless``, then the protocol's rendering of the pieces, with a keepalive comment each
``KEEPALIVE_SECONDS`` that nothing is sent (``api.streaming.with_keepalives``), as on predict's.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Final, Protocol, TypeVar

from starlette.background import BackgroundTask
from starlette.responses import StreamingResponse
from starlette.types import Receive

from api.exceptions import GatewayError
from api.streaming import (
    KEEPALIVE_SECONDS,
    SSE_HEADERS,
    SSE_KEEPALIVE,
    batches_with_keepalives,
)
from conveyor.streams import Chunk, Restart
from proto import task_pb2

__all__ = [
    "SSE_MEDIA_TYPE",
    "ClientGone",
    "Render",
    "StreamDiverged",
    "StreamEndView",
    "StreamItem",
    "Streamer",
    "client_gone",
    "close",
    "first_unless_gone",
    "seamless",
    "sse_answer",
    "started",
]

SSE_MEDIA_TYPE: Final = "text/event-stream; charset=utf-8"


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


class ClientGone(GatewayError):
    """The client went away before a stream's first piece: the generation was stopped, and
    this answer (400) reaches nobody."""

    code = "client_disconnected"
    status = 400


def client_gone(receive: Receive) -> Callable[[], Awaitable[None]]:
    """A wait that returns once the client of ``receive`` (the request's ASGI channel, its body
    read already) has gone away."""

    async def gone() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    return gone


async def started(
    items: AsyncIterator[StreamItem], gone: Callable[[], Awaitable[None]] | None = None
) -> AsyncIterator[StreamItem]:
    """``items`` once its first item is there (what the stream raises before it raises here,
    and the stream is closed); closing the result closes ``items``.

    ``gone`` (optional) returns once the client has gone away: if it does before the first
    item, the wait for that item is cancelled, which ends ``items`` (``Dispatcher.stream`` then
    asks its worker to stop), and ``ClientGone`` is raised."""
    try:
        first = await (anext(items) if gone is None else first_unless_gone(items, gone))
    except StopAsyncIteration:
        return _empty()
    except BaseException:
        await close(items)
        raise
    return _chain(first, items)


_First = TypeVar("_First")


async def first_unless_gone(
    items: AsyncIterator[_First], gone: Callable[[], Awaitable[None]]
) -> _First:
    """The first item, awaited in a task of its own, unless ``gone`` returns first: then that
    task is cancelled (which ends ``items``) and ``ClientGone`` raised."""
    first = asyncio.ensure_future(anext(items))
    watch = asyncio.ensure_future(gone())
    try:
        await asyncio.wait((first, watch), return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
        first.cancel()  # nothing, once it is done
        # Let a cancelled wait end its stream before the stream is closed.
        await asyncio.wait((first,))
    if first.cancelled():
        raise ClientGone("the client went away before the stream's first piece")
    return first.result()


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


Render = Callable[[AsyncIterator[Chunk | StreamEndView]], AsyncGenerator[bytes, None]]
"""A protocol's Server-Sent Events for a stream's pieces and end (restarts hidden already)."""


async def sse_answer(
    items: AsyncIterator[StreamItem],
    render: Render,
    *,
    model: str | None,
    gone: Callable[[], Awaitable[None]] | None,
    keepalive: float | None = None,
) -> StreamingResponse:
    """The Server-Sent Events answer of a synchronous streamed task (``items``, as
    ``Dispatcher.stream`` yields them): once its first item is there (``started``: what comes
    before raises here; ``gone`` returning first raises ``ClientGone``, the generation
    stopped), ``render`` of its pieces without restarts (``seamless``), and ``SSE_KEEPALIVE``
    each ``keepalive`` seconds (default ``KEEPALIVE_SECONDS``) that ``render`` sends nothing.
    However the answer ends (a client gone away included), ``items`` is closed: before its
    end, its worker is asked to stop."""
    pieces = seamless(await started(items, gone), model)
    body = _with_keepalives(render(pieces), KEEPALIVE_SECONDS if keepalive is None else keepalive)
    return StreamingResponse(
        body,
        media_type=SSE_MEDIA_TYPE,
        headers=SSE_HEADERS,
        # Run once the response ends, however it ends (a client gone away included).
        background=BackgroundTask(close, body),
    )


async def _with_keepalives(
    body: AsyncGenerator[bytes, None], seconds: float
) -> AsyncGenerator[bytes, None]:
    """``body``'s parts, those ready at once joined in one write, and ``SSE_KEEPALIVE`` after
    each ``seconds`` without one."""
    paced = batches_with_keepalives(body, seconds)
    try:
        async for parts in paced:
            yield b"".join(parts) if parts else SSE_KEEPALIVE
    finally:
        await paced.aclose()
