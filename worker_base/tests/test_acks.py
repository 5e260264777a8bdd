"""Acknowledging many deliveries with one ``multiple`` ack, only where no open delivery below
would be acknowledged with them."""

from __future__ import annotations

import pytest

from worker_base.acks import Acknowledger


class Channel:
    """A channel that records the acks sent on it."""

    def __init__(self) -> None:
        self.acks: list[tuple[int, bool]] = []
        self.is_closed = False
        self.fail = False


class Message:
    """A delivery on ``channel`` numbered ``tag``."""

    def __init__(self, channel: Channel, tag: int) -> None:
        self._channel = channel
        self.delivery_tag = tag

    @property
    def channel(self) -> Channel:
        if self._channel.is_closed:
            raise RuntimeError("channel closed")
        return self._channel

    async def ack(self, multiple: bool = False) -> None:
        if self.channel.fail:
            raise ConnectionError("broker gone")
        self.channel.acks.append((self.delivery_tag, multiple))


def _delivered(acks: Acknowledger, channel: Channel, tags: range) -> dict[int, Message]:
    messages = {tag: Message(channel, tag) for tag in tags}
    for message in messages.values():
        acks.opened(message)
    return messages


@pytest.mark.asyncio
async def test_a_run_with_nothing_open_below_is_one_multiple_ack() -> None:
    acks, channel = Acknowledger(), Channel()
    messages = _delivered(acks, channel, range(1, 6))
    failures = await acks.ack([messages[3], messages[1], messages[2]])
    assert failures == [None, None, None]
    assert channel.acks == [(3, True)]
    assert acks.open_count() == 2  # 4 and 5 are still open


@pytest.mark.asyncio
async def test_an_open_delivery_below_is_never_covered() -> None:
    acks, channel = Acknowledger(), Channel()
    messages = _delivered(acks, channel, range(1, 7))
    # 3 is still running: 1 and 2 may go together, 4 and 6 must go alone.
    await acks.ack([messages[1], messages[2], messages[4], messages[6]])
    assert sorted(channel.acks) == [(2, True), (4, False), (6, False)]
    channel.acks.clear()
    await acks.ack([messages[3], messages[5]])  # now nothing open is left below 5
    assert channel.acks == [(5, True)]
    assert acks.open_count() == 0


@pytest.mark.asyncio
async def test_a_delivery_settled_otherwise_no_longer_blocks_a_run() -> None:
    acks, channel = Acknowledger(), Channel()
    messages = _delivered(acks, channel, range(1, 4))
    acks.closed(messages[1])  # rejected: the broker no longer holds it open
    await acks.ack([messages[2], messages[3]])
    assert channel.acks == [(3, True)]


@pytest.mark.asyncio
async def test_a_lone_delivery_is_acknowledged_alone() -> None:
    acks, channel = Acknowledger(), Channel()
    messages = _delivered(acks, channel, range(1, 3))
    await acks.ack([messages[1]])
    assert channel.acks == [(1, False)]


@pytest.mark.asyncio
async def test_channels_are_apart() -> None:
    acks, first, second = Acknowledger(), Channel(), Channel()
    old = _delivered(acks, first, range(1, 3))
    new = _delivered(acks, second, range(1, 3))
    await acks.ack([new[1], new[2]])
    assert second.acks == [(2, True)]
    assert first.acks == []  # tag 2 of the other channel says nothing about these
    assert acks.open_count() == 2
    await acks.ack([old[1], old[2]])
    assert first.acks == [(2, True)]


@pytest.mark.asyncio
async def test_a_failed_ack_is_reported_for_every_delivery_it_covered() -> None:
    acks, channel = Acknowledger(), Channel()
    messages = _delivered(acks, channel, range(1, 4))
    channel.fail = True
    failures = await acks.ack([messages[1], messages[2], messages[3]])
    assert all(isinstance(failure, ConnectionError) for failure in failures)
    assert acks.open_count() == 0  # settled as far as the worker goes: the broker requeues them


@pytest.mark.asyncio
async def test_a_closed_channel_is_forgotten_when_a_new_one_delivers() -> None:
    acks, first, second = Acknowledger(), Channel(), Channel()
    _delivered(acks, first, range(1, 4))
    first.is_closed = True
    _delivered(acks, second, range(1, 2))
    assert acks.open_count() == 1
