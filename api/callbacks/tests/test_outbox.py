"""The outbox's scripts on the real Redis: a settle is all or nothing and happens once, due
retries go back to the stream, stopped consumers leave the group."""

import json
import time

import pytest

from api.callbacks.outbox import Callback
from api.callbacks.tests.bench import Bench, bench

__all__ = ["bench"]


def _now_ms() -> int:
    return int(time.time() * 1000)


@pytest.mark.asyncio
async def test_a_settle_acknowledges_deletes_and_writes_the_state_once(bench: Bench) -> None:
    outbox = bench.outbox()
    await outbox.ensure_group()
    await outbox.ensure_group()  # an existing group is fine
    await bench.add("t1", "http://127.0.0.1:9/cb")
    [entry] = await outbox.read(10, 100)
    assert entry.callback == Callback("t1", "http://127.0.0.1:9/cb", "done", 0)
    tried = Callback("t1", "http://127.0.0.1:9/cb", "done", 1)
    assert await outbox.settle(entry, tried, "delivered", delivered_ms=123)
    assert await bench.redis.xlen(bench.stream) == 0
    assert await bench.pending() == 0
    state = await bench.state("t1")
    assert state == {"url": "http://127.0.0.1:9/cb", "state": "delivered", "attempts": "1",
                     "last_error": "", "delivered_unix_ms": "123"}  # fmt: skip
    assert 0 < await bench.redis.ttl(outbox.state_key("t1")) <= 60
    # A late settle of the same entry (another consumer's attempt) changes nothing.
    assert not await outbox.settle(entry, tried, "pending", last_error="HTTP 503",
                                   next_attempt_ms=_now_ms())  # fmt: skip
    assert (await bench.state("t1"))["state"] == "delivered"
    assert await bench.redis.zcard(bench.retry_key) == 0
    await outbox.redis.aclose()


@pytest.mark.asyncio
async def test_a_retry_waits_in_the_lane_and_moves_back_when_due(bench: Bench) -> None:
    outbox = bench.outbox()
    await outbox.ensure_group()
    await bench.add("t2", "https://example.com/a", "failed")
    [entry] = await outbox.read(10, 100)
    due = _now_ms() + 60_000
    tried = Callback("t2", "https://example.com/a", "failed", 1)
    await bench.redis.set("conveyor:result:t2", "x", ex=5)  # the task expires before the retry
    assert await outbox.settle(entry, tried, "pending", last_error="HTTP 503", next_attempt_ms=due)
    # ... so its result is kept past the retry (and not shortened where it lives longer).
    assert 60 + 500 < await bench.redis.ttl("conveyor:result:t2") <= 60 + 600
    await bench.redis.delete("conveyor:result:t2")
    state = await bench.state("t2")
    assert (state["state"], state["attempts"], state["last_error"]) == ("pending", "1", "HTTP 503")
    assert state["next_attempt_unix_ms"] == str(due)
    assert await bench.redis.xlen(bench.stream) == 0
    lane: list[tuple[str, float]] = list(
        await bench.redis.zrange(bench.retry_key, 0, -1, withscores=True)  # type: ignore[arg-type]
    )
    [(member, score)] = lane
    assert json.loads(str(member)) == {"task_id": "t2", "url": "https://example.com/a",
                                  "status": "failed", "attempts": 1}  # fmt: skip
    assert score == due
    assert await outbox.move_due(_now_ms()) == 0  # not due yet
    await bench.redis.zadd(bench.retry_key, {"not json": 0})  # a stray member is removed
    assert await outbox.move_due(due) == 2
    assert await bench.redis.zcard(bench.retry_key) == 0
    [again] = await outbox.read(10, 100)
    assert again.callback == tried  # with its attempts so far
    # Delivered at last: the retry's time is gone from the state, the last error kept.
    assert await outbox.settle(again, Callback("t2", "https://example.com/a", "failed", 2),
                               "delivered", delivered_ms=5)  # fmt: skip
    state = await bench.state("t2")
    assert "next_attempt_unix_ms" not in state
    assert (state["state"], state["attempts"], state["last_error"]) == (
        "delivered",
        "2",
        "HTTP 503",
    )
    await outbox.redis.aclose()


@pytest.mark.asyncio
async def test_an_entry_of_a_dead_consumer_is_claimed_once_idle(bench: Bench) -> None:
    dead, alive = bench.outbox("dead"), bench.outbox("alive")
    await dead.ensure_group()
    await bench.add("t3", "http://127.0.0.1:9/")
    [entry] = await dead.read(10, 100)
    assert await alive.claim(10, 60_000) == []  # not idle long enough
    [claimed] = await alive.claim(10, 0)
    assert claimed == entry
    info = await bench.redis.xpending_range(bench.stream, "conveyor-callbacks", "-", "+", 10)
    assert [i["consumer"] for i in info] == ["alive"]
    await dead.redis.aclose()
    await alive.redis.aclose()


@pytest.mark.asyncio
async def test_malformed_entries_are_read_as_none_and_dropped(bench: Bench) -> None:
    outbox = bench.outbox()
    await outbox.ensure_group()
    await bench.redis.xadd(bench.stream, {"task_id": "t4"})
    await bench.redis.xadd(bench.stream, {"task_id": "t5", "url": "u", "status": "done",
                                          "attempts": "-1"})  # fmt: skip
    entries = await outbox.read(10, 100)
    assert [e.callback for e in entries] == [None, None]
    for entry in entries:
        await outbox.drop(entry)
    assert await bench.redis.xlen(bench.stream) == 0
    assert await bench.pending() == 0
    await outbox.redis.aclose()


@pytest.mark.asyncio
async def test_consumers_with_nothing_pending_leave_the_group(bench: Bench) -> None:
    holder, idle, me = bench.outbox("holder"), bench.outbox("idle"), bench.outbox("me")
    await me.ensure_group()
    await bench.add("t6", "http://127.0.0.1:9/")
    assert len(await holder.read(10, 100)) == 1
    for name in ("idle", "me"):  # a consumer that never got an entry is made explicitly
        await bench.redis.xgroup_createconsumer(bench.stream, "conveyor-callbacks", name)

    async def names() -> list[str]:
        consumers = await bench.redis.xinfo_consumers(bench.stream, "conveyor-callbacks")
        return sorted(c["name"] for c in consumers)

    assert await names() == ["holder", "idle", "me"]
    assert await me.forget_idle_consumers(0) == 1  # "idle"; never "holder", nor itself
    assert await names() == ["holder", "me"]
    assert not await holder.leave()  # it holds an entry: it stays, so the entry can be claimed
    assert await me.leave()
    assert await names() == ["holder"]
    for outbox in (holder, idle, me):
        await outbox.redis.aclose()
