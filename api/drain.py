"""How fast each model version's queue drains, measured: the source of a queued task's
estimated start and of a full queue's ``Retry-After``.

The version's workers count every task they answer in its statistics hash
(``conveyor.stats``: ``success_count`` + ``fail_count``). ``DrainRates`` samples that sum once
a second for each version asked about in the last ``FORGET_SECONDS``, and the rate is the
growth over the samples of the last ``WINDOW_SECONDS``. A version first asked about has no rate
until two samples a second apart exist; one whose workers answered nothing in the window has
rate 0 (no estimate: nobody drains it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Final

import redis.asyncio as aioredis

from conveyor.protocol import stats_key

__all__ = ["DrainRates", "RetryAdvice", "retry_after_for"]

logger = logging.getLogger(__name__)

SAMPLE_SECONDS: Final = 1.0
WINDOW_SECONDS: Final = 15.0
FORGET_SECONDS: Final = 60.0
MAX_RETRY_AFTER: Final = 3600


def retry_after_for(queued: int | None, rate: float | None, default: int) -> int:
    """Seconds until ``queued`` tasks have drained at ``rate`` tasks/s, at least 1 and at most
    an hour; ``default`` when either is unknown or nothing drains."""
    if queued is None or rate is None or rate <= 0:
        return default
    return max(1, min(MAX_RETRY_AFTER, math.ceil(queued / rate)))


class DrainRates:
    """Per model version, tasks answered per second over the last ``WINDOW_SECONDS``."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._redis = client
        self._samples: dict[tuple[str, str], deque[tuple[float, int]]] = {}
        self._asked: dict[tuple[str, str], float] = {}
        self._sampler: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Sample the versions asked about, once a second, until ``stop``."""
        self._sampler = asyncio.create_task(self._sample_forever())

    async def stop(self) -> None:
        """Stop sampling."""
        if self._sampler is not None:
            self._sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sampler

    def rate(self, model: str, version: str) -> float | None:
        """Tasks/s the version's workers answered lately; None until it is measured. Asking
        keeps the version sampled."""
        key = (model, version)
        self._asked[key] = time.monotonic()
        samples = self._samples.get(key)
        if not samples or len(samples) < 2:
            return None
        (t0, c0), (t1, c1) = samples[0], samples[-1]
        if t1 - t0 < SAMPLE_SECONDS * 0.5:
            return None
        return max(0.0, (c1 - c0) / (t1 - t0))

    async def sample(self) -> None:
        """Read the answered counts of every version asked about lately (one round trip)."""
        now = time.monotonic()
        for key, asked in list(self._asked.items()):
            if now - asked > FORGET_SECONDS:
                del self._asked[key]
                self._samples.pop(key, None)
        keys = list(self._asked)
        if not keys:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for model, version in keys:
                pipe.hmget(stats_key(model, version), "success_count", "fail_count")
            replies = await pipe.execute()
        now = time.monotonic()
        for key, (success, fail) in zip(keys, replies, strict=True):
            samples = self._samples.setdefault(key, deque())
            samples.append((now, int(success or 0) + int(fail or 0)))
            while len(samples) > 2 and now - samples[0][0] > WINDOW_SECONDS:
                samples.popleft()

    async def _sample_forever(self) -> None:
        while True:
            try:
                await self.sample()
            except (aioredis.RedisError, OSError) as e:
                logger.debug("drain rates not sampled: %s", e)
            await asyncio.sleep(SAMPLE_SECONDS)


QueueDepth = Callable[[str, str], Awaitable[int | None]]
"""Tasks queued for a model version (None: unknown)."""


class RetryAdvice:
    """The ``Retry-After`` of a full queue: the time its tasks take to drain at the version's
    measured rate (``retry_after_for``). Depths are read at most once a second per version,
    so a refusal storm does not become a storm of queue inspections."""

    def __init__(self, rates: DrainRates, depth: QueueDepth) -> None:
        self.rates = rates
        self._depth = depth
        self._depths: dict[tuple[str, str], tuple[float, int | None]] = {}

    async def retry_after(self, model: str, version: str, default: int) -> int:
        """Seconds a client refused for a full queue should wait; ``default`` when unknown."""
        rate = self.rates.rate(model, version)
        if not rate:
            return default
        now = time.monotonic()
        read = self._depths.get((model, version))
        if read is None or now - read[0] > SAMPLE_SECONDS:
            read = (now, await self._depth(model, version))
            self._depths[(model, version)] = read
        return retry_after_for(read[1], rate, default)
