"""Acknowledging deliveries many at a time: one ``basic.ack`` with ``multiple`` where it is safe.

RabbitMQ numbers a channel's deliveries (the delivery tag), and ``basic.ack`` with ``multiple``
acknowledges every delivery up to and including its tag that is still unsettled. A worker that
stores a batch of results can so settle the batch with one frame instead of one each, saving
itself the frames and the broker their processing (measured on this machine: ~10 % of
RabbitMQ's CPU per message at 16 deliveries per ack).

It is safe only for a run of tags with no delivery below it still open: acknowledging one whose
result is not stored yet would lose it if the worker died. ``Acknowledger`` therefore tracks the
deliveries each channel has open (``opened``, ``closed``), and ``ack`` covers with ``multiple``
only the tags below the lowest delivery still open that is not being acknowledged; the rest are
acknowledged one by one. Tags are per channel: a channel reopened after a broker restart starts
again from 1, and its deliveries are tracked apart from the closed channel's.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Hashable, Sequence
from typing import Any, Protocol

__all__ = ["Acknowledgeable", "Acknowledger"]


class Acknowledgeable(Protocol):
    """A delivery as ``Acknowledger`` needs it (aio-pika's ``IncomingMessage`` is one)."""

    @property
    def delivery_tag(self) -> int | None:
        """The channel's number of this delivery."""

    @property
    def channel(self) -> Any:
        """The channel it came on (raises once that channel is closed)."""

    async def ack(self, multiple: bool = False) -> None:
        """Acknowledge this delivery (and, with ``multiple``, every open one below it)."""


def channel_of(message: Acknowledgeable) -> Hashable:
    """The channel a delivery came on; None once that channel is closed (its deliveries can no
    longer be acknowledged: the broker has returned them to their queues)."""
    try:
        channel: Hashable = message.channel
    except Exception:
        return None
    return channel


class Acknowledger:
    """Tracks the open deliveries per channel and acknowledges runs of them at once."""

    def __init__(self) -> None:
        self._open: dict[Hashable, set[int]] = {}

    def open_count(self) -> int:
        """How many deliveries are open (delivered, not yet settled)."""
        return sum(len(tags) for tags in self._open.values())

    def opened(self, message: Acknowledgeable) -> None:
        """A delivery arrived; it stays open until ``closed`` or acknowledged here."""
        tag = message.delivery_tag
        if tag is None:
            return
        channel = channel_of(message)
        tags = self._open.get(channel)
        if tags is None:  # a new channel (rare): forget the deliveries of closed ones
            for gone in [c for c in self._open if c is None or getattr(c, "is_closed", False)]:
                del self._open[gone]
            tags = self._open[channel] = set()
        tags.add(tag)

    def closed(self, message: Acknowledgeable) -> None:
        """A delivery was settled some other way (rejected, requeued, acknowledged alone)."""
        channel = channel_of(message)
        tags = self._open.get(channel)
        if tags is not None and message.delivery_tag is not None:
            tags.discard(message.delivery_tag)
            if not tags:
                del self._open[channel]

    async def ack(self, messages: Sequence[Acknowledgeable]) -> list[BaseException | None]:
        """Acknowledge ``messages``, each run of them that no other open delivery interrupts
        with one ``multiple`` ack; returns each message's failure (None where it succeeded)."""
        groups: dict[Hashable, list[int]] = {}
        for i, message in enumerate(messages):
            groups.setdefault(channel_of(message), []).append(i)
        calls: list[tuple[list[int], Acknowledgeable, bool]] = []
        for channel, indexes in groups.items():
            tags = {i: messages[i].delivery_tag or 0 for i in indexes}
            open_tags = self._open.get(channel, set())
            open_tags.difference_update(tags.values())  # settled here, whatever the broker says
            if not open_tags:
                self._open.pop(channel, None)
            lowest_other = min(open_tags, default=math.inf)
            covered = [i for i in indexes if tags[i] < lowest_other]
            alone = [i for i in indexes if tags[i] >= lowest_other]
            if len(covered) > 1:
                top = max(covered, key=tags.__getitem__)
                calls.append((covered, messages[top], True))
            else:
                alone += covered
            calls += [([i], messages[i], False) for i in alone]
        # All at once: frames written in one turn of the loop leave in one socket write.
        outcomes = await asyncio.gather(
            *(message.ack(multiple=multiple) for _, message, multiple in calls),
            return_exceptions=True,
        )
        failures: list[BaseException | None] = [None] * len(messages)
        for (indexes, _, _), outcome in zip(calls, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                for i in indexes:
                    failures[i] = outcome
        return failures
