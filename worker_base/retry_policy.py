"""Which failed tasks run again, how often, and after how long: a model's retry policy.

- **Transient.** A failure is retryable when the model raised ``RetryableError`` or an
  exception of a type in its ``retry_on``; any other failure is final at once (``InvalidRequest``
  and an undecodable payload never get here).
- **How often.** A task runs at most ``max_retries`` + 1 times: its own ``Task.max_retries``
  when the request set one (the gateway bounds it), else the worker's ``MAX_RETRIES``, else the
  model's ``max_retries``.
- **Backoff.** Retry *n* (1 for the first) waits an exponential backoff with equal jitter: a
  delay drawn evenly from [b/2, b], b = min(``RETRY_BACKOFF_MAX_MS``, ``RETRY_BACKOFF_MS`` x
  2^(n-1)). The delay lane holds one delay per queue (``conveyor.protocol.DELAY_BUCKETS_MS``,
  powers of two milliseconds), so the wait is that delay rounded to the nearest bucket: within
  a factor of √2 of it.
- **Deadline.** A retry whose wait would end after the task's deadline is not made: the failure
  is final, as when no retry is left.

A retry is the task's next attempt: ``attempt`` one more, this attempt's error appended to
``failed_attempts``. A final failure's result lists the earlier attempts' errors
(``Executor.result_for``) and holds its own.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from conveyor.protocol import DELAY_BUCKETS_MS
from proto import task_pb2
from worker_base.config import Settings
from worker_base.exceptions import RetryableError
from worker_base.model import Model

__all__ = ["Retry", "RetryPolicy", "delay_bucket", "policy_for"]


def delay_bucket(delay_ms: float) -> int:
    """The delay lane's bucket nearest ``delay_ms`` in ratio (a power of two milliseconds),
    held to ``DELAY_BUCKETS_MS``."""
    nearest = 1 << round(math.log2(max(delay_ms, 1.0)))
    return min(max(nearest, DELAY_BUCKETS_MS[0]), DELAY_BUCKETS_MS[-1])


@dataclass(frozen=True)
class Retry:
    """A failed task to run again: ``task`` is its next attempt, to wait ``delay_ms`` (a
    bucket) in the delay lane; ``error`` is the failed attempt's."""

    task: task_pb2.Task
    error: task_pb2.TaskError
    delay_ms: int


@dataclass(frozen=True)
class RetryPolicy:
    """What a worker retries (``retry_on``: exception types), how often by default
    (``max_retries``) and with which backoff (``backoff_ms`` doubling up to ``backoff_max_ms``).

    ``draw`` gives a number in [0, 1) for the jitter (tests pass a fixed one)."""

    retry_on: tuple[type[Exception], ...] = (RetryableError,)
    max_retries: int = 3
    backoff_ms: int = 1000
    backoff_max_ms: int = 60_000
    draw: Callable[[], float] = random.random

    def transient(self, error: Exception) -> bool:
        """Whether ``error`` may not happen on another run of the task."""
        return isinstance(error, self.retry_on)

    def allowed(self, task: task_pb2.Task) -> int:
        """How many retries ``task`` may have: its own ``max_retries``, else the default."""
        return task.max_retries if task.HasField("max_retries") else self.max_retries

    def backoff(self, retry: int) -> float:
        """The jittered delay in milliseconds before retry ``retry`` (1 for the first): drawn
        from [b/2, b], b the capped exponential backoff."""
        ceiling = min(self.backoff_max_ms, self.backoff_ms * 2.0 ** (retry - 1))
        return ceiling / 2 + self.draw() * ceiling / 2

    def buckets(self) -> tuple[int, ...]:
        """Every delay bucket this policy's retries can wait in (the delay queues a worker
        declares)."""
        shortest = delay_bucket(min(self.backoff_ms, self.backoff_max_ms) / 2)
        longest = delay_bucket(self.backoff_max_ms)
        return tuple(b for b in DELAY_BUCKETS_MS if shortest <= b <= longest)

    def retry(self, task: task_pb2.Task, error: task_pb2.TaskError, now_ms: int) -> Retry | None:
        """The retry of ``task`` after its attempt failed retryably with ``error`` at
        ``now_ms``; None when it has no retry left or the wait would end after its deadline."""
        attempt = task.attempt or 1
        if attempt > self.allowed(task):
            return None
        delay_ms = delay_bucket(self.backoff(attempt))
        if task.deadline_unix_ms and now_ms + delay_ms > task.deadline_unix_ms:
            return None
        following = task_pb2.Task()
        following.CopyFrom(task)
        following.attempt = attempt + 1
        following.failed_attempts.append(error)
        return Retry(following, error, delay_ms)


def policy_for(model: Model, settings: Settings | None = None) -> RetryPolicy:
    """``model``'s policy: ``RetryableError`` and its ``retry_on`` types are transient, its
    ``max_retries`` unless ``MAX_RETRIES`` overrides it, the backoff of ``settings`` (without
    settings: the defaults)."""
    transient: tuple[type[Exception], ...] = (RetryableError, *model.retry_on)
    if settings is None:
        return RetryPolicy(transient, max_retries=model.max_retries)
    return RetryPolicy(
        transient,
        max_retries=model.max_retries if settings.max_retries is None else settings.max_retries,
        backoff_ms=settings.retry_backoff_ms,
        backoff_max_ms=settings.retry_backoff_max_ms,
    )
