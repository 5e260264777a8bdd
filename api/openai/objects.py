"""OpenAI's response objects, and the Server-Sent Events of a streamed one.

Not streamed: a ``text_completion`` (``choices[0].text``) or a ``chat.completion``
(``choices[0].message`` with ``role`` ``assistant`` and ``content``), with ``finish_reason``
and ``usage``.

Streamed (``stream: true``): one event ``data: <chunk>`` per piece, a ``text_completion`` or a
``chat.completion.chunk`` whose one choice carries the piece (``text``; chat: ``delta.content``,
the first chunk ``delta.role`` ``assistant`` with empty content), then a chunk with an empty
piece and ``finish_reason``; with ``stream_options.include_usage`` every chunk has ``usage:
null`` and one more chunk with no choices carries the ``usage``; then ``data: [DONE]``. An
error once the stream has begun is a last event ``data: {"error": {...}}`` with no ``[DONE]``
(the openai client raises ``APIError`` on it). A worker that dies mid-stream is hidden: OpenAI's
format has no restart event (``api.pieces.seamless``).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Final

import orjson

from api.oip.execute import response_message
from api.openai.contract import TextModel, finish_reason, piece_text, usage
from api.pieces import StreamEndView, close
from conveyor.streams import Chunk

__all__ = ["DONE", "Reply", "stream_events"]

DONE: Final = b"data: [DONE]\n\n"


@dataclass(frozen=True)
class Reply:
    """What every object of one answer shares: its kind, id, creation time and model."""

    chat: bool
    id: str
    created: int
    model: str

    @classmethod
    def new(cls, *, chat: bool, model: str) -> Reply:
        """A new answer's identity (``chatcmpl-...`` or ``cmpl-...``)."""
        prefix = "chatcmpl-" if chat else "cmpl-"
        return cls(chat, prefix + secrets.token_hex(12), int(time.time()), model)

    def _head(self, kind: str) -> dict[str, Any]:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model}

    def completion(self, text: str, finish: str, used: dict[str, int]) -> dict[str, Any]:
        """The whole answer at once."""
        if self.chat:
            choice: dict[str, Any] = {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": finish,
            }
            return {**self._head("chat.completion"), "choices": [choice], "usage": used}
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
        return {**self._head("text_completion"), "choices": [choice], "usage": used}

    def chunk(
        self,
        text: str,
        *,
        first: bool = False,
        finish: str | None = None,
        with_usage: bool = False,
    ) -> dict[str, Any]:
        """One chunk of a stream: a piece, or (``finish``) the last, empty one."""
        choice: dict[str, Any]
        if self.chat:
            delta: dict[str, Any] = {"role": "assistant", "content": text} if first else {}
            if text and not first:
                delta["content"] = text
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            document = {**self._head("chat.completion.chunk"), "choices": [choice]}
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
            document = {**self._head("text_completion"), "choices": [choice]}
        if with_usage:
            document["usage"] = None
        return document

    def usage_chunk(self, used: dict[str, int]) -> dict[str, Any]:
        """The chunk ``stream_options.include_usage`` asks for: no choices, the usage."""
        kind = "chat.completion.chunk" if self.chat else "text_completion"
        return {**self._head(kind), "choices": [], "usage": used}


def _event(document: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(document) + b"\n\n"


async def stream_events(
    reply: Reply,
    pieces: AsyncIterator[Chunk | StreamEndView],
    info: TextModel,
    *,
    prompt: str,
    limit: int | None,
    include_usage: bool,
    error_body: Callable[[Exception], dict[str, Any]],
) -> AsyncGenerator[bytes, None]:
    """The body of a streamed answer (see the module doc). Closing it closes ``pieces``."""
    count = 0
    try:
        if reply.chat:
            yield _event(reply.chunk("", first=True, with_usage=include_usage))
        async for item in pieces:
            if isinstance(item, Chunk):
                count += 1
                text = piece_text(item.payload, info)
                yield _event(reply.chunk(text, with_usage=include_usage))
            else:
                response_message(item.result, info)  # raises for a failed task
        finish = finish_reason(count, limit)
        yield _event(reply.chunk("", finish=finish, with_usage=include_usage))
        if include_usage:
            yield _event(reply.usage_chunk(usage(prompt, count)))
        yield DONE
    except Exception as exc:
        yield _event(error_body(exc))
    finally:
        await close(pieces)
