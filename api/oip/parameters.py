"""Triton's meanings of ``timeout`` and ``priority``, mapped onto Conveyor's own scale.

On the protocol's paths (``/v2`` over REST and the gRPC service) a request means what a Triton
client means by them:

- ``priority``: 1 is the highest, larger numbers are lower, 0 (or none) is the model's
  default. Conveyor's tasks run 0 to 9, higher first, default 0. Triton's 1 to 10 become
  Conveyor's 9 down to 0 (``10 - priority``); anything above 10 is the lowest, 0; Triton's 0
  is Conveyor's default, 0. So only Triton's 1 to 9 overtake other tasks, 1 the most.
- ``timeout``: microseconds, 0 (or none) meaning the server's default. Conveyor counts
  seconds: ``timeout / 1e6``, at most ``MAX_TIMEOUT`` (a larger one is refused, never cut
  short in silence); none or 0 is ``DEFAULT_TIMEOUT``.
- A transport's own deadline (gRPC's) counts too: with one, the request waits until the
  earlier of the deadline and ``timeout``; a deadline without ``timeout`` replaces the default
  (held to ``MAX_TIMEOUT``).

``task_parameters`` is the one function that does this, for both transports. ``/predict`` keeps
its own meanings (seconds, 0-9 higher first).
"""

from dataclasses import dataclass
from typing import Any, Final

from api.oip.exceptions import InvalidInferRequest

PRIORITY_LEVELS: Final = 10
"""Conveyor's priorities, 0 to 9, higher first; Triton's 1 to 10 map onto them in reverse."""

DEFAULT_PRIORITY: Final = 0
"""The task priority of a request without one (or with Triton's 0)."""

MICROSECONDS: Final = 1_000_000


@dataclass(frozen=True)
class TaskParameters:
    """What a request's ``timeout`` and ``priority`` mean for its task."""

    seconds: float
    """How long the request waits for its result, and the task's deadline."""
    priority: int
    """The task's priority, 0 to 9, higher first."""


def task_parameters(
    timeout: Any,
    priority: Any,
    *,
    default_timeout: float,
    max_timeout: float,
    deadline: float | None = None,
) -> TaskParameters:
    """Map Triton's ``timeout`` (microseconds) and ``priority`` (1 highest) onto a task's.

    ``timeout`` and ``priority`` are the request's values, None when it gave none.
    ``deadline`` is the seconds left before the transport's own deadline, None without one.
    Raise ``InvalidInferRequest`` for a value that is not a whole number from 0 up, or a
    timeout above ``max_timeout``.
    """
    given = _whole(timeout, "timeout", "microseconds, 0 for the default")
    seconds = given / MICROSECONDS if given else None
    if seconds is not None and seconds > max_timeout:
        raise InvalidInferRequest(
            f"parameters.timeout is in microseconds (Triton's unit): at most "
            f"{round(max_timeout * MICROSECONDS)} ({max_timeout:g} s), got {timeout!r}",
            field="timeout",
        )
    if deadline is not None:
        seconds = min(deadline, seconds if seconds is not None else max_timeout)
    level = _whole(priority, "priority", "1 is the highest, larger numbers lower, 0 the default")
    mapped = max(PRIORITY_LEVELS - level, 0) if level else DEFAULT_PRIORITY
    return TaskParameters(
        seconds=seconds if seconds is not None else default_timeout, priority=mapped
    )


def _whole(value: Any, name: str, meaning: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInferRequest(
            f"parameters.{name} must be a whole number from 0 up ({meaning}), got {value!r}",
            field=name,
        )
    return value
