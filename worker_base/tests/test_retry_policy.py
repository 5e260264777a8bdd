"""The retry policy: which failures are retried, how often, after which backoff, in which
delay bucket, and never past the task's deadline."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable

import pytest
from pydantic import ValidationError

from conveyor.protocol import DELAY_BUCKETS_MS
from proto import task_pb2
from worker_base import MessageDescriptor, Model, RetryableError, Settings
from worker_base.retry_policy import RetryPolicy, delay_bucket, policy_for

NOW = 1_000_000_000_000


def _task(attempt: int = 1, max_retries: int | None = None, deadline: int = 0) -> task_pb2.Task:
    task = task_pb2.Task(
        task_id="t",
        model="m",
        version="1",
        payload=b"x",
        result_key="k",
        reply_channel="conveyor:reply:g",
        attempt=attempt,
        deadline_unix_ms=deadline,
        priority=7,
    )
    if max_retries is not None:
        task.max_retries = max_retries
    return task


def _error(message: str) -> task_pb2.TaskError:
    return task_pb2.TaskError(code=task_pb2.TaskError.MODEL_ERROR, message=message)


# Which failures.


def test_retryable_error_and_the_declared_types_are_transient_others_are_not() -> None:
    policy = RetryPolicy((RetryableError, ConnectionError))
    assert policy.transient(RetryableError("busy"))
    assert policy.transient(ConnectionResetError("reset"))  # a subclass of a declared type
    assert not policy.transient(ValueError("bad"))
    assert not RetryPolicy().transient(ConnectionError("not declared"))


# How often.


def test_the_request_replaces_the_default_number_of_retries() -> None:
    policy = RetryPolicy(max_retries=3)
    assert policy.allowed(_task()) == 3
    assert policy.allowed(_task(max_retries=1)) == 1
    assert policy.allowed(_task(max_retries=0)) == 0  # present and zero: no retry


@pytest.mark.parametrize(("max_retries", "runs"), [(0, 1), (1, 2), (2, 3), (5, 6)])
def test_a_task_runs_at_most_max_retries_plus_one_times(max_retries: int, runs: int) -> None:
    policy = RetryPolicy(max_retries=max_retries)
    task = _task()
    attempts = 1
    while (retry := policy.retry(task, _error(f"run {attempts}"), NOW)) is not None:
        task = retry.task
        attempts += 1
    assert attempts == runs
    assert task.attempt == runs
    assert [e.message for e in task.failed_attempts] == [f"run {n}" for n in range(1, runs)]


def test_the_next_attempt_is_the_same_task_one_attempt_on_with_this_error() -> None:
    original = _task(attempt=2, max_retries=4)
    original.failed_attempts.append(_error("first"))
    retry = RetryPolicy().retry(original, _error("second"), NOW)
    assert retry is not None
    assert retry.task.attempt == 3
    assert [e.message for e in retry.task.failed_attempts] == ["first", "second"]
    assert retry.error.message == "second"
    # Everything else travels unchanged: the reply channel (a waiting gateway), the priority
    # (its lane), the request's own bound.
    for name in ("task_id", "payload", "reply_channel", "priority", "result_key", "max_retries"):
        assert getattr(retry.task, name) == getattr(original, name)
    assert original.attempt == 2 and len(original.failed_attempts) == 1  # not changed


def test_an_old_task_without_an_attempt_counts_as_the_first() -> None:
    task = _task()
    task.ClearField("attempt")
    retry = RetryPolicy().retry(task, _error("e"), NOW)
    assert retry is not None and retry.task.attempt == 2


# The deadline.


def test_no_retry_whose_wait_ends_after_the_deadline() -> None:
    policy = RetryPolicy(backoff_ms=1000, draw=lambda: 1.0)  # the first wait: 1024 ms
    assert policy.retry(_task(deadline=NOW + 1000), _error("e"), NOW) is None
    retry = policy.retry(_task(deadline=NOW + 1024), _error("e"), NOW)
    assert retry is not None and retry.delay_ms == 1024
    assert policy.retry(_task(deadline=0), _error("e"), NOW) is not None  # no deadline


# The backoff.


def test_the_backoff_doubles_from_the_base_up_to_the_cap() -> None:
    top = RetryPolicy(backoff_ms=1000, backoff_max_ms=10_000, draw=lambda: 1.0)
    assert [top.backoff(n) for n in range(1, 7)] == [1000, 2000, 4000, 8000, 10_000, 10_000]
    assert top.backoff(200) == 10_000  # no overflow however late the retry


def test_equal_jitter_keeps_each_backoff_between_half_and_all_of_it() -> None:
    bottom = RetryPolicy(backoff_ms=1000, backoff_max_ms=10_000, draw=lambda: 0.0)
    assert [bottom.backoff(n) for n in range(1, 6)] == [500, 1000, 2000, 4000, 5000]
    seeded = random.Random(7)
    policy = RetryPolicy(backoff_ms=1000, backoff_max_ms=60_000, draw=seeded.random)
    for retry in range(1, 10):
        ceiling = min(60_000, 1000 * 2 ** (retry - 1))
        delays = [policy.backoff(retry) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert max(delays) - min(delays) > ceiling / 4  # jittered, not one value


# The delay buckets.


def _always(value: float) -> Callable[[], float]:
    return lambda: value


@pytest.mark.parametrize(
    ("delay", "bucket"),
    [(1000, 1024), (1447, 1024), (1449, 2048), (2500, 2048), (700, 512), (0, 64), (10**9, 2**22)],
)
def test_a_delay_rounds_to_the_nearest_bucket(delay: float, bucket: int) -> None:
    assert delay_bucket(delay) == bucket


def test_every_bucket_is_within_a_factor_of_root_two_of_its_delay() -> None:
    for delay in range(64, 4_000_000, 997):
        bucket = delay_bucket(delay)
        assert bucket in DELAY_BUCKETS_MS
        assert 1 / math.sqrt(2) <= bucket / delay <= math.sqrt(2)


def test_the_declared_buckets_hold_every_wait_the_policy_can_choose() -> None:
    policy = RetryPolicy(backoff_ms=1000, backoff_max_ms=60_000)
    assert policy.buckets() == (512, 1024, 2048, 4096, 8192, 16384, 32768, 65536)
    for draw, retry in itertools.product((0.0, 0.3, 0.999), range(1, 12)):
        fixed = RetryPolicy(backoff_ms=1000, backoff_max_ms=60_000, draw=_always(draw))
        assert delay_bucket(fixed.backoff(retry)) in policy.buckets()
    assert RetryPolicy(backoff_ms=200, backoff_max_ms=1000).buckets() == (128, 256, 512, 1024)
    assert RetryPolicy(backoff_ms=5000, backoff_max_ms=5000).buckets() == (2048, 4096)


# A model's policy.


class Flaky(Model):
    name = "flaky"
    retry_on = (TimeoutError,)
    max_retries = 5

    async def process_request(self, body: bytes) -> task_pb2.Task:
        raise AssertionError("not run here")

    def get_request_format(self) -> MessageDescriptor:
        return task_pb2.Task.DESCRIPTOR

    def get_response_format(self) -> MessageDescriptor:
        return task_pb2.Task.DESCRIPTOR


def test_a_model_declares_its_transient_types_and_retries_the_settings_override() -> None:
    policy = policy_for(Flaky())
    assert policy.transient(TimeoutError()) and policy.transient(RetryableError("x"))
    assert policy.max_retries == 5
    assert (policy.backoff_ms, policy.backoff_max_ms) == (1000, 60_000)
    configured = policy_for(
        Flaky(), Settings(max_retries=1, retry_backoff_ms=200, retry_backoff_max_ms=800)
    )
    assert configured.max_retries == 1
    assert (configured.backoff_ms, configured.backoff_max_ms) == (200, 800)
    assert policy_for(Flaky(), Settings()).max_retries == 5  # MAX_RETRIES unset: the model's


def test_settings_refuse_a_cap_below_the_base() -> None:
    with pytest.raises(ValidationError):
        Settings(retry_backoff_ms=2000, retry_backoff_max_ms=1000)
