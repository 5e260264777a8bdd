"""wait_until returns the first truthy value, retries transient errors, names what timed out."""

import pytest

from tools.stack.waiting import wait_until


def test_returns_the_first_truthy_value_after_transient_errors() -> None:
    calls = iter([OSError("refused"), 0, "ready"])

    def condition() -> object:
        value = next(calls)
        if isinstance(value, Exception):
            raise value
        return value

    assert wait_until(condition, 5, interval=0.01) == "ready"


def test_times_out_naming_what_and_the_last_error() -> None:
    def refused() -> bool:
        raise ConnectionRefusedError("nobody home")

    with pytest.raises(TimeoutError, match=r"gateway ready not met within 0.05 s .*nobody home"):
        wait_until(refused, 0.05, interval=0.01, what="gateway ready")


def test_other_errors_give_up_at_once() -> None:
    def gone() -> bool:
        raise AssertionError("worker exited")

    with pytest.raises(AssertionError, match="worker exited"):
        wait_until(gone, 5)
