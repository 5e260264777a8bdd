"""Step load for the ``step`` scenario: add users in steps until the last step has run.

Loaded by Locust beside ``locustfile.py`` (``-f locustfile.py,step_shape.py``) only for that
scenario, because Locust applies any shape class it finds. Each step holds its user count for
``--step-time`` seconds, so ``load_testing.history.find_saturation`` can compare plateaus.
"""

from __future__ import annotations

from locust import LoadTestShape, events
from locust.argument_parser import LocustArgumentParser


def _add_options(parser: LocustArgumentParser) -> None:
    parser.add_argument("--step-users", type=int, default=5, help="users added per step")
    parser.add_argument("--step-time", type=float, default=15.0, help="seconds per step")
    parser.add_argument("--step-count", type=int, default=8, help="number of steps")


events.init_command_line_parser.add_listener(_add_options)  # type: ignore[no-untyped-call]


class StepLoadShape(LoadTestShape):
    """``step_users`` more users every ``step_time`` seconds, for ``step_count`` steps."""

    def tick(self) -> tuple[int, float] | None:
        """Users and spawn rate for now; None ends the run after the last step."""
        assert self.runner is not None, "Locust sets the runner before the first tick"
        options = self.runner.environment.parsed_options
        assert options is not None, "Locust parses the options before the first tick"
        step_users, step_time = int(options.step_users), float(options.step_time)
        step = int(self.get_run_time() // step_time)  # type: ignore[no-untyped-call]
        if step >= int(options.step_count):
            return None
        return (step + 1) * step_users, float(step_users)
