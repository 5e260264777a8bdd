"""The delivery of callbacks: every gateway process runs one ``CallbackDelivery``, started and
stopped with the app (``api.main``).

It reads the callbacks due (``api.callbacks.outbox``) as a consumer of the group, at most
``CALLBACK_CONCURRENCY`` at a time, and for each one renders the task as ``GET /tasks/{id}``
shows it and POSTs that JSON to the callback URL (``api.callbacks.sender``), signed
(``api.callbacks.signing``). A 2xx answer delivers it. Any other answer, a timeout or a
connection error is a failed attempt: the callback waits in the retry lane for its backoff
(``api.callbacks.backoff``) while attempts remain, and is kept as ``undeliverable`` after its
last one. Task processing never waits for any of this: workers only append the entry.

Besides, every ``MOVE_INTERVAL`` seconds the service moves the retries that are due back into
the stream, and now and then claims the entries another consumer has held for longer than
``CALLBACK_TIMEOUT`` plus ``CLAIM_MARGIN_SECONDS`` (its gateway was killed mid-delivery), and
delivers them again.

With tracing on (``conveyor.tracing``), each attempt is a client span (``POST callback``, a new
trace: the callback entry carries no context of the task's), its ``traceparent`` sent with the
POST; a failed attempt has the status ERROR.

Delivery is at least once: a gateway killed (or stopped) after the receiver got a POST and
before the entry was settled leaves it pending, and another attempt follows. Receivers
deduplicate by ``Conveyor-Event-ID``. A Redis outage pauses delivery, and nothing is lost: what
was read stays pending in the group, what was not stays in the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

import httpx
import orjson
from redis.exceptions import RedisError

from api.callbacks.backoff import retry_delay
from api.callbacks.outbox import Callback, Entry, Outbox
from api.callbacks.sender import callback_headers, post_callback
from api.catalog import ModelCatalog
from api.config import Settings
from api.dispatch import Dispatcher
from api.exceptions import TaskNotFound
from api.task_state import task_state
from conveyor import logs, tracing
from conveyor.metrics import GatewayMetrics
from conveyor.redis import redis_client_for
from conveyor.results import now_ms

__all__ = [
    "CLAIM_MARGIN_SECONDS",
    "MOVE_INTERVAL",
    "CallbackDelivery",
    "DeliveryPolicy",
    "TaskRenderer",
    "task_renderer",
]

logger = logging.getLogger(__name__)

TaskRenderer = Callable[[str], Awaitable[bytes | None]]
"""The body of a task's callback: its JSON as ``GET /tasks/{id}`` answers it; None when the
task (or its result) expired."""

CLAIM_MARGIN_SECONDS: Final = 5.0
"""Added to ``CALLBACK_TIMEOUT``: how long past a delivery's timeout its entry must have been
pending before another consumer takes it over (reading the task and settling take time too;
one that takes longer may be delivered twice)."""

MOVE_INTERVAL: Final = 0.5
"""Seconds between two moves of the due retries into the stream."""

READ_BLOCK_MS: Final = 1000
"""How long one read waits for a new entry."""

FORGET_CONSUMERS_AFTER_MS: Final = 10 * 60 * 1000
"""A consumer with nothing pending and idle that long (a gateway that stopped) leaves the group."""

_MOVE_BATCH = 500
_REDIS_ERRORS = (RedisError, OSError)


@dataclass(frozen=True)
class DeliveryPolicy:
    """How callbacks are sent and retried (the ``CALLBACK_*`` settings)."""

    secret: str = ""
    max_attempts: int = 8
    timeout: float = 10.0
    concurrency: int = 32
    backoff_seconds: float = 30.0
    claim_margin: float = CLAIM_MARGIN_SECONDS

    @classmethod
    def from_settings(cls, settings: Settings) -> DeliveryPolicy:
        """The gateway's policy."""
        return cls(
            secret=settings.callback_secret,
            max_attempts=settings.callback_max_attempts,
            timeout=settings.callback_timeout,
            concurrency=settings.callback_concurrency,
            backoff_seconds=settings.callback_backoff_seconds,
        )

    @property
    def claim_idle_ms(self) -> int:
        """How long an entry stays with its consumer before another one may claim it."""
        return int((self.timeout + self.claim_margin) * 1000)

    @property
    def claim_interval(self) -> float:
        """Seconds between two claims of stale entries."""
        return min(max(self.claim_idle_ms / 2000, MOVE_INTERVAL), 30.0)


def task_renderer(dispatcher: Dispatcher, catalog: ModelCatalog) -> TaskRenderer:
    """A ``TaskRenderer`` reading tasks through the gateway's dispatcher and catalog."""

    async def render(task_id: str) -> bytes | None:
        try:
            status = await dispatcher.status(task_id)
        except TaskNotFound:
            return None
        if status.result is None:  # the record outlived the result: the task expired
            return None
        state = await task_state(status, catalog)
        return orjson.dumps(state.model_dump(mode="json", exclude_none=True))

    return render


def consumer_name() -> str:
    """A consumer name unique to this process (host, pid and a random part, for XINFO)."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class CallbackDelivery:
    """Delivers the callbacks of ``outbox`` with ``client``; owns both: ``stop`` closes the
    outbox's Redis client and ``client``."""

    def __init__(
        self,
        outbox: Outbox,
        client: httpx.AsyncClient,
        render: TaskRenderer,
        policy: DeliveryPolicy,
        metrics: GatewayMetrics | None = None,
    ) -> None:
        self.outbox = outbox
        self.policy = policy
        self._client = client
        self._render = render
        self._metrics = metrics
        self._inflight: set[asyncio.Task[None]] = set()
        self._slot_freed = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []
        self._errors = 0

    @classmethod
    def for_gateway(
        cls,
        settings: Settings,
        dispatcher: Dispatcher,
        catalog: ModelCatalog,
        metrics: GatewayMetrics | None = None,
    ) -> CallbackDelivery:
        """The gateway's service: a Redis client and an HTTP client of its own."""
        policy = DeliveryPolicy.from_settings(settings)
        redis = redis_client_for(settings, max_connections=policy.concurrency + 4)
        outbox = Outbox(redis, consumer_name(), settings.result_ttl)
        client = httpx.AsyncClient(
            timeout=policy.timeout,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=policy.concurrency),
        )
        return cls(outbox, client, task_renderer(dispatcher, catalog), policy, metrics)

    def start(self) -> None:
        """Start reading and delivering (the group is created on the first read)."""
        self._loops = [
            asyncio.create_task(self._consume(), name="callbacks-consume"),
            asyncio.create_task(self._maintain(), name="callbacks-maintain"),
        ]

    async def stop(self) -> None:
        """Stop at once: deliveries in flight are cancelled and stay pending in the group (to
        be claimed by another gateway, or this one restarted); then close the clients."""
        tasks = [*self._loops, *self._inflight]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(*_REDIS_ERRORS, TimeoutError):
            async with asyncio.timeout(2.0):
                await self.outbox.leave()
        await self._client.aclose()
        await self.outbox.redis.aclose()

    @property
    def inflight(self) -> int:
        """Deliveries in progress."""
        return len(self._inflight)

    def _free_slots(self) -> int:
        return self.policy.concurrency - len(self._inflight)

    async def _wait_for_slot(self) -> int:
        while self._free_slots() <= 0:
            self._slot_freed.clear()
            await self._slot_freed.wait()
        return self._free_slots()

    def _spawn(self, entry: Entry) -> None:
        task = asyncio.create_task(self._deliver_safely(entry))
        self._inflight.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._slot_freed.set()

    def _redis_trouble(self, doing: str, error: Exception) -> float:
        """Log a Redis failure (the first of a run, then every tenth); the pause before the
        next try."""
        self._errors += 1
        if self._errors % 10 == 1:
            logger.warning("callbacks: %s failed (%s: %s); trying again", doing,
                           type(error).__name__, error)  # fmt: skip
        return min(0.2 * self._errors, 5.0)

    async def _consume(self) -> None:
        """Fill the free slots: with stale entries now and then, else with new ones. The only
        loop that starts deliveries, so they never exceed the concurrency."""
        loop = asyncio.get_running_loop()
        next_claim = loop.time() + self.policy.claim_interval
        group_ready = False
        while True:
            try:
                if not group_ready:
                    await self.outbox.ensure_group()
                    group_ready = True
                free = await self._wait_for_slot()
                if loop.time() >= next_claim:
                    next_claim = loop.time() + self.policy.claim_interval
                    entries = await self.outbox.claim(free, self.policy.claim_idle_ms)
                    if entries:
                        logger.info("callbacks: took over %d stale deliveries", len(entries))
                else:
                    entries = await self.outbox.read(free, READ_BLOCK_MS)
                self._errors = 0
            except _REDIS_ERRORS as e:
                if "NOGROUP" in str(e):  # the stream or group went away (Redis was flushed)
                    group_ready = False
                await asyncio.sleep(self._redis_trouble("reading the stream", e))
                continue
            for entry in entries:
                self._spawn(entry)

    async def _maintain(self) -> None:
        """Move the due retries back into the stream; now and then, forget stopped consumers."""
        loop = asyncio.get_running_loop()
        next_forget = loop.time()
        while True:
            await asyncio.sleep(MOVE_INTERVAL)
            try:
                for _ in range(10):
                    if await self.outbox.move_due(now_ms(), _MOVE_BATCH) < _MOVE_BATCH:
                        break
                if loop.time() >= next_forget:
                    next_forget = loop.time() + FORGET_CONSUMERS_AFTER_MS / 1000 / 2
                    await self.outbox.forget_idle_consumers(FORGET_CONSUMERS_AFTER_MS)
            except _REDIS_ERRORS as e:
                if "NOGROUP" not in str(e):  # before the first read made the group
                    await asyncio.sleep(self._redis_trouble("moving retries", e))

    async def _deliver_safely(self, entry: Entry) -> None:
        try:
            await self.deliver(entry)
        except _REDIS_ERRORS as e:
            # Unsettled: it stays pending in the group and is claimed again later.
            logger.warning("callbacks: entry %s left pending: %s: %s", entry.id,
                           type(e).__name__, e)  # fmt: skip
        except Exception:
            logger.exception("callbacks: entry %s left pending", entry.id)

    async def deliver(self, entry: Entry) -> None:
        """One attempt at the entry's callback, then settle it: delivered, retried later, or
        undeliverable; an entry that is not a callback, or whose task expired, is dropped."""
        callback = entry.callback
        if callback is None:
            logger.warning("callbacks: dropped stream entry %s: not a callback", entry.id)
            await self.outbox.drop(entry)
            return
        with logs.bound(task_id=callback.task_id):
            try:
                body = await self._render(callback.task_id)
            except _REDIS_ERRORS:
                raise
            except Exception as e:  # the registry is away, ...: not the receiver's failure
                await self._retry(entry, callback, f"could not read the task: {e}"[:200])
                return
            if body is None:
                logger.warning("callbacks: dropped the callback of expired task %s",
                               callback.task_id)  # fmt: skip
                await self.outbox.drop(entry)
                return
            await self._attempt(entry, callback, body)

    async def _attempt(self, entry: Entry, callback: Callback, body: bytes) -> None:
        attempt = dataclasses.replace(callback, attempts=callback.attempts + 1)
        headers = callback_headers(self.policy.secret, callback.task_id, callback.status, body)
        started = time.perf_counter()
        if tracing.tracer is not None:
            failure = await self._traced_post(tracing.tracer, attempt, body, headers)
        else:
            failure = await post_callback(self._client, callback.url, body, headers,
                                          self.policy.timeout)  # fmt: skip
        if self._metrics is not None:
            self._metrics.callback_seconds.observe(time.perf_counter() - started)
        if failure is None:
            settled = await self.outbox.settle(entry, attempt, "delivered", delivered_ms=now_ms())
            self._count(settled, "delivered")
        elif attempt.attempts < self.policy.max_attempts:
            await self._retry(entry, attempt, failure)
        else:
            settled = await self.outbox.settle(entry, attempt, "undeliverable", last_error=failure)
            if settled:
                logger.warning("callbacks: undeliverable after %d attempts: %s",
                               attempt.attempts, failure)  # fmt: skip
            self._count(settled, "undeliverable")

    async def _traced_post(
        self, tracer: tracing.Tracer, attempt: Callback, body: bytes, headers: dict[str, str]
    ) -> str | None:
        """The POST of one attempt in a client span; its failure (None: delivered)."""
        url = httpx.URL(attempt.url)
        with tracer.start_as_current_span(
            "POST callback",
            kind=tracing.SpanKind.CLIENT,
            attributes={
                "http.request.method": "POST",
                "server.address": url.host,
                "url.path": url.path,
                tracing.TASK_ID: attempt.task_id,
                "conveyor.callback.attempt": attempt.attempts,
                "conveyor.callback.status": attempt.status,
            },
        ) as span:
            headers = {**headers, tracing.TRACEPARENT: tracing.traceparent_of(span)}
            failure = await post_callback(self._client, attempt.url, body, headers,
                                          self.policy.timeout)  # fmt: skip
            if failure is not None:
                tracing.fail(span, failure)
            return failure

    async def _retry(self, entry: Entry, callback: Callback, failure: str) -> None:
        delay = retry_delay(max(callback.attempts, 1), self.policy.backoff_seconds)
        due = now_ms() + int(delay * 1000)
        settled = await self.outbox.settle(
            entry, callback, "pending", last_error=failure, next_attempt_ms=due
        )
        self._count(settled, "retried")

    def _count(self, settled: bool, outcome: str) -> None:
        if settled and self._metrics is not None:
            self._metrics.callbacks.labels(outcome).inc()
