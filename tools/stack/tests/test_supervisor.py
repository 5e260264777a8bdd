"""A dead service is restarted after a back-off that grows, and every step is logged."""

import sys
from pathlib import Path

from tools.stack.process import Service
from tools.stack.supervisor import Backoff, Supervisor


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_restart_after_backoff_doubling_and_logged(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "raise SystemExit(3)"]
    crasher = Service("crasher", {}, tmp_path, "crasher", argv=argv)
    crasher.process.wait(30)
    clock, lines = Clock(), list[str]()
    supervisor = Supervisor([crasher], lines.append, Backoff(initial=2, maximum=3), clock)

    supervisor.poll()
    assert lines == [f"crasher exited with 3; restarting in 2 s (log: {crasher.log_path})"]
    clock.now = 1.9
    supervisor.poll()
    assert supervisor.restarts("crasher") == 0
    clock.now = 2.0
    supervisor.poll()
    assert supervisor.restarts("crasher") == 1
    assert lines[-1].startswith("crasher restarted (pid ")

    crasher.process.wait(30)
    supervisor.poll()
    assert lines[-1].startswith("crasher exited with 3; restarting in 3 s"), "doubled, capped"
