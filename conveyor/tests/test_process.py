"""How a service process starts: settle_heap (start-up's objects frozen, young objects collected
every GEN0_THRESHOLD) and supervise (children restarted with a back-off, stopped on a signal).

Each supervisor runs in a forked process of its own, so the test can signal it.
"""

import gc
import itertools
import logging
import os
import signal
import sys
import time
import weakref
from collections.abc import Callable, Iterator
from multiprocessing import get_context
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import pytest

from conveyor.process import GEN0_THRESHOLD, Backoff, settle_heap, supervise


class Node:
    """A container that can sit in a reference cycle."""

    def __init__(self) -> None:
        self.other: object = None


@pytest.fixture(autouse=True)
def _restore_collector() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_freezes_what_is_alive_and_raises_only_the_young_threshold() -> None:
    _, middle, oldest = gc.get_threshold()
    alive = [Node() for _ in range(100)]
    settle_heap()
    assert gc.get_threshold() == (GEN0_THRESHOLD, middle, oldest)
    assert gc.get_freeze_count() >= len(alive)
    assert not any(gc.is_tracked(n) and n in gc.get_objects() for n in alive[:3])


def test_none_keeps_the_interpreters_threshold() -> None:
    gc.set_threshold(700, 10, 10)
    settle_heap(gen0_threshold=None)
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() > 0


def test_cycles_made_afterwards_are_still_collected_automatically() -> None:
    settle_heap()
    first, second = Node(), Node()
    first.other, second.other = second, first
    gone = weakref.ref(first)
    del first, second
    assert gone() is not None, "a cycle waits for the collector"
    kept = [Node() for _ in range(3 * GEN0_THRESHOLD)]  # net allocations trigger collections
    assert gone() is None, "collected without an explicit gc.collect()"
    assert len(kept) == 3 * GEN0_THRESHOLD


# The children's behaviours. Each writes "<pid> <start time>" to a file of its own in ``where``.


def _note_start(where: Path) -> None:
    # Written whole, then renamed: the test may read it while it is written.
    partial = where / f"{os.getpid()}.partial"
    partial.write_text(f"{os.getpid()} {time.monotonic()}")
    os.replace(partial, where / f"{os.getpid()}.start")


def _serves(where: Path) -> None:
    """Runs until SIGTERM, then takes a moment to stop, notes it, and exits 0."""
    _note_start(where)
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.append(signum))
    while not stopping:
        time.sleep(0.01)
    time.sleep(0.3)
    (where / f"{os.getpid()}.stopped").write_text("")


def _ignores_sigterm(where: Path) -> None:
    _note_start(where)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    while True:
        time.sleep(0.01)


def _crashes(where: Path) -> None:
    _note_start(where)
    sys.exit(3)


class Supervised:
    """``supervise(count, behaviour)`` running in a process of its own, logging to a file."""

    def __init__(
        self,
        where: Path,
        behaviour: Callable[[Path], None],
        count: int,
        grace: float = 10.0,
        backoff: Backoff | None = None,
    ) -> None:
        self.where = where
        self.log = where / "supervisor.log"

        def main() -> None:
            logging.basicConfig(
                filename=self.log, level=logging.INFO, format="%(message)s", force=True
            )
            sys.exit(supervise(count, lambda _: behaviour(where), "child", grace, backoff))

        self.process: BaseProcess = get_context("fork").Process(target=main)
        self.process.start()

    def starts(self) -> list[tuple[int, float]]:
        """(pid, start time) of every child started so far, in start order."""
        found = []
        for path in self.where.glob("*.start"):
            pid, started = path.read_text().split()
            found.append((int(pid), float(started)))
        return sorted(found, key=lambda start: start[1])

    def wait_for_starts(self, count: int, timeout: float = 20.0) -> list[tuple[int, float]]:
        deadline = time.monotonic() + timeout
        while len(self.starts()) < count:
            assert time.monotonic() < deadline, f"only {self.starts()} within {timeout} s"
            time.sleep(0.02)
        return self.starts()

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM the supervisor; its exit code."""
        assert self.process.pid is not None
        os.kill(self.process.pid, signal.SIGTERM)
        self.process.join(timeout)
        return self.process.exitcode

    def close(self) -> None:
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def supervised(tmp_path: Path) -> Iterator[Callable[..., Supervised]]:
    made: list[Supervised] = []

    def make(behaviour: Callable[[Path], None], count: int, **kwargs: Any) -> Supervised:
        made.append(Supervised(tmp_path, behaviour, count, **kwargs))
        return made[-1]

    yield make
    for one in made:
        one.close()


def test_a_child_that_dies_is_started_again(supervised: Callable[..., Supervised]) -> None:
    run = supervised(_serves, 2, backoff=Backoff(initial=0.1))
    (doomed, _), (other, _) = run.wait_for_starts(2)
    os.kill(doomed, signal.SIGKILL)
    starts = run.wait_for_starts(3)
    replacement = starts[-1][0]
    assert replacement not in (doomed, other)
    assert run.stop() == 0
    assert not _alive(other) and not _alive(replacement)
    lines = run.log.read_text().splitlines()
    assert sum(line.startswith("started child-") for line in lines) == 3
    assert any(f"(pid {doomed}) was killed by SIGKILL; restarting" in line for line in lines)


def test_sigterm_stops_every_child_and_waits_for_them(
    supervised: Callable[..., Supervised],
) -> None:
    run = supervised(_serves, 3)
    pids = [pid for pid, _ in run.wait_for_starts(3)]
    assert run.stop() == 0
    # Each child took 0.3 s to stop after the signal: the supervisor waited for all of them.
    assert sorted(p.stem for p in run.where.glob("*.stopped")) == sorted(map(str, pids))
    assert not any(_alive(pid) for pid in pids)
    lines = run.log.read_text().splitlines()
    assert sum(line.endswith("exited with 0") for line in lines) == 3


def test_a_child_that_does_not_stop_is_killed_and_the_exit_is_not_zero(
    supervised: Callable[..., Supervised],
) -> None:
    run = supervised(_ignores_sigterm, 1, grace=0.5)
    [(pid, _)] = run.wait_for_starts(1)
    assert run.stop() == 1
    assert not _alive(pid)
    assert "was killed by SIGKILL" in run.log.read_text()


def test_a_crash_loop_backs_off(supervised: Callable[..., Supervised]) -> None:
    run = supervised(_crashes, 1, backoff=Backoff(initial=0.1, maximum=0.4, healthy_after=60))
    time.sleep(2.0)
    starts = [started for _, started in run.starts()]
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    # 0.1, 0.2, 0.4, 0.4, ... s apart: a handful of starts, not hundreds.
    assert 4 <= len(starts) <= 9, gaps
    assert gaps[0] >= 0.1 and gaps[1] >= 0.2 and all(gap >= 0.4 for gap in gaps[2:]), gaps
    assert run.stop() in (0, 1)  # 1 if the last child had just crashed again


def test_at_least_one_child() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        supervise(0, lambda _: None, "none", 1.0)
