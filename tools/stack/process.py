"""Child processes with their output in a log file: start, signal, stop (SIGTERM, wait, kill)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["Service", "python_path", "stop_all"]

STOP_TIMEOUT = 30.0


def python_path() -> str:
    """This process's import roots as a ``PYTHONPATH`` (works from Bazel runfiles and venvs)."""
    return os.pathsep.join(p for p in sys.path if p)


class Service:
    """One child process, by default ``python -m module``, logging to ``<log_dir>/<label>.log``.

    It starts at once, in a session of its own, so Ctrl-C in a terminal does not reach it and
    signals go to its whole process group. :meth:`start` runs it again after it exited (the
    log is appended to).
    """

    def __init__(
        self,
        module: str,
        env: Mapping[str, str],
        log_dir: Path,
        label: str,
        *,
        argv: Sequence[str] | None = None,
        exact_env: bool = False,
    ) -> None:
        """``exact_env``: run with ``env`` as it is, instead of this process's environment
        updated with ``env`` and this process's import roots as ``PYTHONPATH``."""
        self.module = module
        self.label = label
        self.argv = list(argv) if argv is not None else [sys.executable, "-m", module]
        self.env = dict(env) if exact_env else {**os.environ, **env, "PYTHONPATH": python_path()}
        self.env.setdefault("PYTHONUNBUFFERED", "1")
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{label}.log"
        self.process = self._spawn()

    def _spawn(self) -> subprocess.Popen[bytes]:
        with self.log_path.open("ab") as log:
            return subprocess.Popen(
                self.argv,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def start(self) -> None:
        """Start the process again (after it exited)."""
        self.process = self._spawn()

    @property
    def pid(self) -> int:
        """The process id."""
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        """The exit code, or None while it runs."""
        return self.process.poll()

    def alive(self) -> bool:
        """True while the process runs."""
        return self.process.poll() is None

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the process and its process group (if it still runs)."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signum)

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM (SIGCONT first, in case it is stopped), wait, then SIGKILL; return the code."""
        if self.alive():
            self.signal(signal.SIGCONT)
            self.signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.process.wait()
        return self.process.returncode

    def kill(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGKILL the process and its process group (no clean shutdown), and reap it."""
        if self.alive():
            self.signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout)

    def log(self) -> str:
        """The process's output so far (for failure messages)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def stop_all(services: Sequence[Service], timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM every service at once (in the given order), then wait for each, then kill."""
    for service in services:
        service.signal(signal.SIGCONT)
        service.signal(signal.SIGTERM)
    for service in services:
        service.stop(timeout)
