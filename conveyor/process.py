"""How a Conveyor service process starts: its heap settled once start-up is done, and, to run
several processes of one service, a supervisor that keeps them running.

``settle_heap``: what start-up allocated (the libraries, the app, the model) lives as long as the
process; frozen (``gc.freeze``), it is outside the collector's reach and no full collection
traverses it again. A service whose requests keep many objects alive at once (the gateway) also
collects its youngest generation less often (``GEN0_THRESHOLD``), so that most of a request's
objects are freed by reference counting before the collector looks at them.

``supervise``: one process forks ``count`` children that each run the whole service, restarts a
child that dies, and stops them all on SIGTERM or SIGINT. It forks (never spawns): under Bazel the
interpreter runs through an unpacked dynamic loader, so ``sys.executable`` cannot be executed
again. It must be called before the process starts an event loop or a thread, which a forked
child would inherit in an unusable state.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import get_context
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from types import FrameType

__all__ = ["GEN0_THRESHOLD", "Backoff", "settle_heap", "supervise"]

logger = logging.getLogger(__name__)

GEN0_THRESHOLD = 10_000
"""Net allocations of container objects between two collections of the youngest generation."""

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def settle_heap(gen0_threshold: int | None = GEN0_THRESHOLD) -> None:
    """Collect once, freeze what is left, and set the youngest generation's threshold to
    ``gen0_threshold`` (``None``: keep the interpreter's; the older generations' thresholds
    stay as they are). Call it once, when start-up is done and before serving."""
    gc.collect()
    gc.freeze()
    if gen0_threshold is not None:
        _, middle, oldest = gc.get_threshold()
        gc.set_threshold(gen0_threshold, middle, oldest)


@dataclass(frozen=True)
class Backoff:
    """Delays before a dead child is started again: ``initial``, doubled after each death of a
    child that ran less than ``healthy_after`` seconds, up to ``maximum``; a child that ran
    longer starts over at ``initial``. A crash loop so restarts at most every ``maximum``."""

    initial: float = 0.5
    maximum: float = 30.0
    healthy_after: float = 30.0


@dataclass
class _Child:
    """One of the supervisor's places: its process (None while waiting to restart)."""

    number: int
    process: BaseProcess | None = None
    started_at: float = 0.0
    restart_at: float | None = None
    delay: float = 0.0


def supervise(
    count: int,
    target: Callable[[int], None],
    name: str,
    grace: float,
    backoff: Backoff | None = None,
) -> int:
    """Run ``target`` in ``count`` forked children until SIGTERM or SIGINT; return the exit code.

    A child that exits while the supervisor is not stopping (whatever its code) is started
    again after ``backoff``. On SIGTERM or SIGINT the supervisor sends that signal to every
    child, waits up to ``grace`` seconds for all of them to exit, kills (SIGKILL) any still
    running, and returns 0 when every child exited with 0, else 1. Each start and each exit is
    logged, naming the child ``<name>-<n>`` and its pid.

    Call it from the main thread, before any event loop or thread is started; ``target(n)``
    runs in the child with the default SIGTERM and SIGINT handlers, ``n`` the child's place
    (1 to ``count``, kept by a child started again in its place, e.g. to give each place a port
    of its own), and the child exits with 0 when it returns (1 when it raises, the code of a
    ``SystemExit``).
    """
    if count < 1:
        raise ValueError(f"count must be at least 1, not {count}")
    backoff = backoff or Backoff()
    context = get_context("fork")
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    received: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        with contextlib.suppress(OSError):  # the pipe is full: the supervisor wakes anyway
            os.write(wake_write, b"\0")

    def child_main(number: int) -> None:
        for signum in _STOP_SIGNALS:
            signal.signal(signum, signal.SIG_DFL)
        os.close(wake_read)
        os.close(wake_write)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
        target(number)

    def start(child: _Child) -> None:
        process = context.Process(
            target=child_main, args=(child.number,), name=f"{name}-{child.number}"
        )
        # Blocked across the fork: a stop signal reaches the supervisor after the fork, and
        # the child only once it has its own handlers.
        signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        try:
            process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
        child.process, child.started_at, child.restart_at = process, time.monotonic(), None
        logger.info("started %s (pid %s)", process.name, process.pid)

    previous = {signum: signal.signal(signum, on_signal) for signum in _STOP_SIGNALS}
    children = [_Child(number, delay=backoff.initial) for number in range(1, count + 1)]
    try:
        for child in children:
            start(child)
        while not received:
            _serve_turn(children, wake_read, backoff, start)
        return _stop(children, received[0], grace)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        os.close(wake_read)
        os.close(wake_write)


def _serve_turn(
    children: list[_Child], wake: int, backoff: Backoff, start: Callable[[_Child], None]
) -> None:
    """Wait for a child to exit, a restart to fall due or a signal; then act on what happened."""
    now = time.monotonic()
    due = [c.restart_at for c in children if c.restart_at is not None]
    timeout = max(0.0, min(due) - now) if due else None
    running = [c.process.sentinel for c in children if c.process is not None]
    if wake in wait([*running, wake], timeout):
        with contextlib.suppress(BlockingIOError):
            os.read(wake, 512)
        return
    now = time.monotonic()
    for child in children:
        process = child.process
        if process is not None and not process.is_alive():
            process.join()
            if now - child.started_at >= backoff.healthy_after:
                child.delay = backoff.initial
            child.process, child.restart_at = None, now + child.delay
            logger.warning(
                "%s (pid %s) %s; restarting in %g s",
                process.name,
                process.pid,
                _exit_text(process.exitcode),
                child.delay,
            )
            child.delay = min(child.delay * 2, backoff.maximum)
        elif child.restart_at is not None and now >= child.restart_at:
            start(child)


def _stop(children: list[_Child], signum: int, grace: float) -> int:
    """Send ``signum`` to every running child, wait up to ``grace`` s, kill the rest."""
    running = [c.process for c in children if c.process is not None]
    logger.info("%s: stopping %d processes", signal.Signals(signum).name, len(running))
    for process in running:
        if process.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signum)
    deadline = time.monotonic() + grace
    pending = [p for p in running if p.is_alive()]
    while pending and (left := deadline - time.monotonic()) > 0:
        wait([p.sentinel for p in pending], left)
        pending = [p for p in pending if p.is_alive()]
    for process in pending:
        logger.error(
            "%s (pid %s) still runs after %g s: killing it", process.name, process.pid, grace
        )
        process.kill()
    clean = True
    for process in running:
        process.join()
        logger.info("%s (pid %s) %s", process.name, process.pid, _exit_text(process.exitcode))
        clean = clean and process.exitcode == 0
    return 0 if clean else 1


def _exit_text(code: int | None) -> str:
    if code is not None and code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with {code}"
