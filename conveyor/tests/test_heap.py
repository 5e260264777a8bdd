"""settle_heap: start-up's objects frozen, young objects collected every GEN0_THRESHOLD."""

import gc
import weakref
from collections.abc import Iterator

import pytest

from conveyor.heap import GEN0_THRESHOLD, settle_heap


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
