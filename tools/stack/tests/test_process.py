"""A Service runs in a session of its own, logs to its file, stops with SIGTERM, else SIGKILL."""

import sys
from pathlib import Path

from tools.stack.process import Service, stop_all
from tools.stack.waiting import wait_until

STUBBORN = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('up', flush=True); time.sleep(60)"
)


def test_python_module_runs_with_env_and_logs(tmp_path: Path) -> None:
    service = Service("platform", {"GREETING": "hi"}, tmp_path, "platform")
    assert service.process.wait(30) == 0
    assert service.returncode == 0
    assert service.log().strip(), "python -m platform prints the platform"
    assert service.env["GREETING"] == "hi" and service.env["PYTHONPATH"]


def test_stop_terminates_then_kills_and_start_runs_it_again(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", STUBBORN]
    service = Service("stubborn", {}, tmp_path, "stubborn", argv=argv)
    first = service.pid
    wait_until(lambda: "up" in service.log(), 30, what="SIGTERM ignored")
    assert service.stop(timeout=0.5) == -9, "SIGTERM ignored: killed"
    assert not service.alive()
    service.start()
    assert service.pid != first and service.alive()
    stop_all([service], timeout=0.5)
    assert not service.alive()


def test_exact_env_is_passed_as_it_is(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "import os; print(sorted(os.environ))"]
    service = Service("env", {"ONLY": "1"}, tmp_path, "env", argv=argv, exact_env=True)
    assert service.process.wait(30) == 0
    assert service.env == {"ONLY": "1", "PYTHONUNBUFFERED": "1"}
    assert "PYTHONPATH" not in service.log() and "'ONLY'" in service.log()
