"""The delivery service on the real Redis, POSTing to a real receiver on the loopback: signed
and delivered once, retried with backoff, undeliverable after its last attempt, taken over
from a consumer that died or stopped, bounded in flight, and unharmed by a Redis outage."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
from prometheus_client import CollectorRegistry

from api.callbacks.delivery import CallbackDelivery, DeliveryPolicy
from api.callbacks.signing import verify
from api.callbacks.tests.bench import REDIS_URL, Bench, bench, eventually
from api.callbacks.tests.receiver import Receiver
from conveyor.metrics import GatewayMetrics
from tools.stack.ports import free_port

__all__ = ["bench"]

SECRET = "unit-test-secret"


def _body(task_id: str) -> bytes:
    return orjson.dumps({"task_id": task_id, "model": "m", "status": "done"})


async def _render(task_id: str) -> bytes | None:
    return None if task_id.startswith("expired") else _body(task_id)


def _policy(**changes: float) -> DeliveryPolicy:
    values: dict[str, float] = {
        "max_attempts": 3, "timeout": 2.0, "concurrency": 8, "backoff_seconds": 0.05,
        "claim_margin": 0.0,
    }  # fmt: skip
    values.update(changes)
    return DeliveryPolicy(
        secret=SECRET,
        max_attempts=int(values["max_attempts"]),
        timeout=values["timeout"],
        concurrency=int(values["concurrency"]),
        backoff_seconds=values["backoff_seconds"],
        claim_margin=values["claim_margin"],
    )


@contextlib.asynccontextmanager
async def _running(
    bench: Bench,
    policy: DeliveryPolicy,
    consumer: str = "c1",
    metrics: GatewayMetrics | None = None,
    redis_url: str = REDIS_URL,
) -> AsyncIterator[CallbackDelivery]:
    outbox = bench.outbox(consumer, url=redis_url)
    delivery = CallbackDelivery(outbox, httpx.AsyncClient(), _render, policy, metrics)
    delivery.start()
    try:
        yield delivery
    finally:
        await delivery.stop()


def _count(metrics: GatewayMetrics, outcome: str) -> float:
    value = metrics.registry.get_sample_value("conveyor_callbacks_total", {"outcome": outcome})
    return value or 0.0


async def _counted(metrics: GatewayMetrics, outcome: str, expected: float) -> bool:
    """True once the metrics count ``expected`` settles of ``outcome`` (counted just after the
    settle is written)."""
    return _count(metrics, outcome) == expected


@pytest.mark.asyncio
async def test_a_callback_is_posted_signed_and_marked_delivered(bench: Bench) -> None:
    metrics = GatewayMetrics(CollectorRegistry())
    with Receiver() as receiver:
        await bench.add("t-ok", receiver.url("/hook?x=1"))
        async with _running(bench, _policy(), metrics=metrics):
            await eventually(lambda: _counted(metrics, "delivered", 1), what="delivered")
        [post] = receiver.received
    assert post.path == "/hook?x=1"
    assert post.body == _body("t-ok")
    assert post.headers["content-type"] == "application/json"
    assert post.headers["user-agent"] == "conveyor-callbacks"
    assert post.headers["conveyor-event-id"] == "t-ok.done"
    assert verify(SECRET, post.body, post.headers["conveyor-signature"])
    state = await bench.state("t-ok")
    assert (state["attempts"], state["last_error"]) == ("1", "")
    assert abs(int(state["delivered_unix_ms"]) - time.time() * 1000) < 10_000
    assert await bench.redis.xlen(bench.stream) == 0 and await bench.pending() == 0
    assert _count(metrics, "delivered") == 1
    assert metrics.registry.get_sample_value("conveyor_callback_duration_seconds_count") == 1


async def _state_is(bench: Bench, task_id: str, state: str) -> bool:
    return (await bench.state(task_id)).get("state") == state


@pytest.mark.asyncio
async def test_failed_attempts_are_retried_with_the_same_event_id(bench: Bench) -> None:
    metrics = GatewayMetrics(CollectorRegistry())
    answers = iter([503, 500])
    with Receiver(lambda path, headers, body: next(answers, 204)) as receiver:
        await bench.add("t-retry", receiver.url(), "failed")
        async with _running(bench, _policy(max_attempts=5), metrics=metrics):
            await eventually(lambda: _counted(metrics, "delivered", 1), what="delivered")
        posts = receiver.received
    assert [p.status for p in posts] == [503, 500, 204]
    assert {p.headers["conveyor-event-id"] for p in posts} == {"t-retry.failed"}
    assert all(verify(SECRET, p.body, p.headers["conveyor-signature"]) for p in posts)
    state = await bench.state("t-retry")
    assert (state["attempts"], state["last_error"]) == ("3", "HTTP 500")
    assert "next_attempt_unix_ms" not in state
    assert await bench.redis.zcard(bench.retry_key) == 0
    assert (_count(metrics, "retried"), _count(metrics, "delivered")) == (2, 1)


@pytest.mark.asyncio
async def test_after_its_last_attempt_a_callback_is_undeliverable(bench: Bench) -> None:
    metrics = GatewayMetrics(CollectorRegistry())
    with Receiver(lambda path, headers, body: 503) as receiver:
        await bench.add("t-dead", receiver.url())
        async with _running(bench, _policy(max_attempts=3), metrics=metrics):
            await eventually(lambda: _counted(metrics, "undeliverable", 1), what="given up")
            await asyncio.sleep(0.3)  # nothing more happens
        assert len(receiver.received) == 3
    state = await bench.state("t-dead")
    assert (state["attempts"], state["last_error"]) == ("3", "HTTP 503")
    assert "next_attempt_unix_ms" not in state and "delivered_unix_ms" not in state
    assert await bench.redis.zcard(bench.retry_key) == 0
    assert await bench.redis.xlen(bench.stream) == 0
    assert (_count(metrics, "retried"), _count(metrics, "undeliverable")) == (2, 1)


@pytest.mark.asyncio
async def test_a_timeout_and_a_refused_connection_are_failed_attempts(bench: Bench) -> None:
    release = threading.Event()

    def slow(path: str, headers: dict[str, str], body: bytes) -> int:
        release.wait(5.0)
        return 200

    with Receiver(slow) as receiver:
        await bench.add("t-slow", receiver.url())
        await bench.add("t-closed", f"http://127.0.0.1:{free_port()}/")
        started = time.monotonic()
        async with _running(bench, _policy(max_attempts=1, timeout=0.3)):
            await eventually(lambda: _state_is(bench, "t-slow", "undeliverable"), what="timeout")
            await eventually(lambda: _state_is(bench, "t-closed", "undeliverable"), what="refused")
        release.set()
    assert time.monotonic() - started < 3.0
    assert (await bench.state("t-slow"))["last_error"] == "timeout after 0.3 s"
    assert (await bench.state("t-closed"))["last_error"].startswith("connection failed")


@pytest.mark.asyncio
async def test_the_callback_of_an_expired_task_is_dropped(bench: Bench) -> None:
    with Receiver() as receiver:
        await bench.add("expired-1", receiver.url())
        await bench.redis.xadd(bench.stream, {"not": "a callback"})
        async with _running(bench, _policy()):

            async def gone() -> bool:
                return await bench.redis.xlen(bench.stream) == 0 and await bench.pending() == 0

            await eventually(gone, what="entries dropped")
        assert receiver.received == []
    assert await bench.state("expired-1") == {}


@pytest.mark.asyncio
async def test_an_entry_whose_gateway_died_is_delivered_by_another(bench: Bench) -> None:
    with Receiver() as receiver:
        await bench.add("t-orphan", receiver.url())
        dead = bench.outbox("dead")
        await dead.ensure_group()
        assert len(await dead.read(10, 100)) == 1  # read, then its gateway was SIGKILLed
        await dead.redis.aclose()
        async with _running(bench, _policy(timeout=0.3), consumer="survivor"):
            await eventually(lambda: _state_is(bench, "t-orphan", "delivered"), what="taken over")
        assert [p.headers["conveyor-event-id"] for p in receiver.received] == ["t-orphan.done"]
    assert await bench.pending() == 0


@pytest.mark.asyncio
async def test_a_stop_leaves_a_delivery_in_flight_pending_for_the_next(bench: Bench) -> None:
    arrived, release = threading.Event(), threading.Event()

    def first_hangs(path: str, headers: dict[str, str], body: bytes) -> int:
        if not arrived.is_set():
            arrived.set()
            release.wait(5.0)
        return 200

    with Receiver(first_hangs) as receiver:
        await bench.add("t-stop", receiver.url())

        async def hanging() -> bool:
            return arrived.is_set()

        async with _running(bench, _policy(timeout=1.0), consumer="stopping") as delivery:
            await eventually(hanging, what="POST arrived")
            assert delivery.inflight == 1
        assert await bench.pending() == 1  # cancelled, not settled, not lost
        assert await bench.state("t-stop") == {}
        async with _running(bench, _policy(timeout=0.2), consumer="next"):
            await eventually(lambda: _state_is(bench, "t-stop", "delivered"), what="redelivered")
        assert [p.status for p in receiver.received] == [200]  # the second POST
        release.set()

        async def both_answered() -> bool:
            return len(receiver.received) == 2

        await eventually(both_answered, what="the first POST answered too late")
        ids = [p.headers["conveyor-event-id"] for p in receiver.received]
    assert ids == ["t-stop.done", "t-stop.done"]  # a duplicate, deduplicated by its event id
    assert await bench.pending() == 0


@pytest.mark.asyncio
async def test_no_more_than_the_concurrency_is_in_flight(bench: Bench) -> None:
    lock = threading.Lock()
    now = [0, 0]  # in flight, most seen

    def counting(path: str, headers: dict[str, str], body: bytes) -> int:
        with lock:
            now[0] += 1
            now[1] = max(now[1], now[0])
        time.sleep(0.05)
        with lock:
            now[0] -= 1
        return 200

    with Receiver(counting) as receiver:
        for i in range(24):
            await bench.add(f"t-many-{i}", receiver.url())
        async with _running(bench, _policy(concurrency=4)):

            async def all_delivered() -> bool:
                return len(receiver.received) == 24 and await bench.pending() == 0

            await eventually(all_delivered, what="24 delivered")
    assert now[1] <= 4
    assert len({p.headers["conveyor-event-id"] for p in receiver.received}) == 24


class _CuttableProxy:
    """A TCP proxy to Redis that can be cut (every connection closed, none accepted) and
    restored on the same port: a Redis outage as the delivery sees it."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.port = free_port()
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        self._writers.update((writer, upstream_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))
        self._writers.difference_update((writer, upstream_writer))


@pytest.mark.asyncio
async def test_a_redis_outage_delays_deliveries_and_loses_none(bench: Bench) -> None:
    host_port = REDIS_URL.split("//", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1]
    host, _, port = host_port.partition(":")
    proxy = _CuttableProxy(host, int(port or 6379))
    await proxy.open()
    with Receiver() as receiver:
        await bench.add("t-before", receiver.url())
        async with _running(
            bench, _policy(timeout=1.0), redis_url=f"redis://127.0.0.1:{proxy.port}/0"
        ):
            await eventually(lambda: _state_is(bench, "t-before", "delivered"), what="first")
            await proxy.cut()
            for i in range(5):
                await bench.add(f"t-during-{i}", receiver.url())
            await asyncio.sleep(1.5)  # the delivery's reads fail meanwhile
            assert len(receiver.received) == 1
            await proxy.open()

            async def all_delivered() -> bool:
                states = [await bench.state(f"t-during-{i}") for i in range(5)]
                return all(s.get("state") == "delivered" for s in states)

            await eventually(all_delivered, within=15.0, what="delivered after the outage")
        assert sorted(p.headers["conveyor-event-id"] for p in receiver.received) == [
            "t-before.done",
            *(f"t-during-{i}.done" for i in range(5)),
        ]
    await proxy.cut()
