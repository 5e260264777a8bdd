"""Triton's timeout and priority, mapped onto Conveyor's task scale (the one mapping)."""

import pytest

from api.oip.exceptions import InvalidInferRequest
from api.oip.parameters import TaskParameters, task_parameters


def _map(timeout: object = None, priority: object = None, deadline: float | None = None):
    return task_parameters(
        timeout, priority, default_timeout=30.0, max_timeout=300.0, deadline=deadline
    )


@pytest.mark.parametrize(
    ("triton", "conveyor"),
    [(None, 0), (0, 0), (1, 9), (2, 8), (5, 5), (9, 1), (10, 0), (11, 0), (2**64 - 1, 0)],
)
def test_priority_one_is_the_highest_and_zero_the_default(triton: object, conveyor: int) -> None:
    assert _map(priority=triton).priority == conveyor


def test_a_higher_triton_priority_never_runs_later() -> None:
    levels = [_map(priority=p).priority for p in range(1, 20)]
    assert levels == sorted(levels, reverse=True)
    assert set(levels) == set(range(10))


@pytest.mark.parametrize(
    ("timeout", "seconds"),
    [(None, 30.0), (0, 30.0), (1, 1e-6), (2_500_000, 2.5), (300_000_000, 300.0)],
)
def test_timeout_is_in_microseconds_and_zero_the_default(timeout: object, seconds: float) -> None:
    assert _map(timeout=timeout) == TaskParameters(seconds=seconds, priority=0)


def test_a_deadline_counts_with_the_timeout_or_instead_of_the_default() -> None:
    assert _map(deadline=5.0).seconds == 5.0
    assert _map(deadline=500.0).seconds == 300.0  # held to MAX_TIMEOUT
    assert _map(timeout=2_000_000, deadline=5.0).seconds == 2.0
    assert _map(timeout=9_000_000, deadline=5.0).seconds == 5.0


@pytest.mark.parametrize(
    ("timeout", "priority", "message"),
    [
        (300_000_001, None, "in microseconds .* at most 300000000 \\(300 s\\)"),
        (1.5, None, "timeout must be a whole number"),
        ("100", None, "timeout must be a whole number"),
        (-1, None, "timeout must be a whole number"),
        (True, None, "timeout must be a whole number"),
        (None, -1, "priority must be a whole number .*1 is the highest"),
        (None, 1.0, "priority must be a whole number"),
        (None, False, "priority must be a whole number"),
    ],
)
def test_values_that_mean_nothing_are_refused(
    timeout: object, priority: object, message: str
) -> None:
    with pytest.raises(InvalidInferRequest, match=message):
        _map(timeout, priority)
