"""Running the reference's processes for the benchmark: a module of this repository started
with the benchmark's environment, waited for until it answers, stopped.

``Running`` is what ``Reference`` and ``StreamBaseline`` are as context managers: ``start()``
on entry (it returns once the system answers), ``stop()`` on exit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Self

from load_testing.stack import StackError

__all__ = ["Running", "answers", "spawn", "stop_all", "wait_answering"]

STOP_TIMEOUT = 15.0
"""Seconds a process has to exit after SIGTERM before it is killed."""


def spawn(module: str, log: Path, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """Run ``python -m <module>`` with this process's environment and import path, plus
    ``env``; its output goes to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
        **env,
    }
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", module], env=environment, stdout=out, stderr=subprocess.STDOUT
        )


def answers(url: str, body: bytes) -> bool:
    """Whether a JSON ``POST`` of ``body`` to ``url`` answers 200."""
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def wait_answering(
    url: str,
    body: bytes,
    processes: Mapping[str, subprocess.Popen[bytes]],
    timeout: float,
    log_dir: Path,
) -> None:
    """Return once ``url`` answers ``body``; ``StackError`` when one of ``processes`` (by name)
    exits first, or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while not answers(url, body):
        for name, process in processes.items():
            if process.poll() is not None:
                raise StackError(f"{name} exited; see {log_dir}")
        if time.monotonic() > deadline:
            raise StackError(f"{', '.join(processes)} did not answer; see {log_dir}")
        time.sleep(0.25)


def stop_all(processes: Iterable[subprocess.Popen[bytes]]) -> None:
    """SIGTERM each process still running, then kill any that lingers (``STOP_TIMEOUT``)."""
    running = [process for process in processes if process.poll() is None]
    for process in running:
        process.send_signal(signal.SIGTERM)
    for process in running:
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Running:
    """A system of processes as a context manager: ``start()`` on entry, ``stop()`` on exit."""

    def start(self) -> Self:
        """Start the processes; return once the system answers."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop the processes and clean up after them."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
