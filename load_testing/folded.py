"""Ranking py-spy's raw output: one line per distinct stack, ``frame;frame;... count``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

__all__ = ["Ranked", "rank_folded"]

Ranked = list[tuple[str, float]]
"""Frames with their share of all samples, largest first."""


def rank_folded(lines: Iterable[str], top: int) -> tuple[Ranked, Ranked]:
    """The ``top`` frames by *own* samples (the frame was running) and by *inclusive* samples
    (the frame was on the stack, counted once per stack however often it recurs), each as a
    share of all samples. Lines that are not ``stack count`` are skipped."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        frames = stack.split(";")
        total += samples
        own[frames[-1]] += samples
        for frame in set(frames):
            inclusive[frame] += samples
    if total == 0:
        return [], []
    return (
        [(frame, n / total) for frame, n in own.most_common(top)],
        [(frame, n / total) for frame, n in inclusive.most_common(top)],
    )
