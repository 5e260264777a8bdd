"""Timing of one codec on one payload: size, encode and decode time, round-trip check.

Each measurement warms up, calibrates how many calls make one timed repeat last at least
``min_repeat_ns``, then times ``repeats`` such loops with :func:`time.perf_counter_ns` and the
garbage collector paused (as :mod:`timeit` does). The spread is the inter-quartile range of the
per-call times of those repeats.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from serialization_type_test.codecs import Codec

__all__ = ["MeasureOptions", "Measurement", "Timing", "measure"]


@dataclass(frozen=True)
class MeasureOptions:
    """How hard to measure: repeats per statistic, warm-up calls, minimum repeat duration."""

    repeats: int = 15
    warmup: int = 3
    min_repeat_ns: int = 20_000_000


@dataclass(frozen=True)
class Timing:
    """Per-call time in nanoseconds over the repeats: median, quartiles, best."""

    median_ns: float
    p25_ns: float
    p75_ns: float
    min_ns: float
    loops: int

    @property
    def iqr_ns(self) -> float:
        """Inter-quartile range, the spread reported next to the median."""
        return self.p75_ns - self.p25_ns


@dataclass(frozen=True)
class Measurement:
    """Everything measured for one codec and one payload."""

    codec: str
    payload: str
    wire_safe: bool
    size_bytes: int
    encode: Timing
    decode: Timing
    roundtrip_ok: bool


def _time_call(call: Callable[[], object], options: MeasureOptions) -> Timing:
    for _ in range(options.warmup):
        call()
    start = time.perf_counter_ns()
    call()
    single = max(time.perf_counter_ns() - start, 1)
    loops = max(1, options.min_repeat_ns // single)
    per_call: list[float] = []
    gc.collect()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(options.repeats):
            start = time.perf_counter_ns()
            for _ in range(loops):
                call()
            per_call.append((time.perf_counter_ns() - start) / loops)
    finally:
        if gc_was_enabled:
            gc.enable()
    if len(per_call) > 1:
        p25, _, p75 = statistics.quantiles(per_call, n=4, method="inclusive")
    else:
        p25 = p75 = per_call[0]
    return Timing(statistics.median(per_call), p25, p75, min(per_call), loops)


def measure(
    codec: Codec[Any], payload_name: str, value: Any, options: MeasureOptions | None = None
) -> Measurement:
    """Measure ``codec`` on ``value``; the round trip must give back an equal value."""
    options = options or MeasureOptions()
    data = codec.encode(value)
    roundtrip_ok = codec.decode(data) == value
    encode = _time_call(lambda: codec.encode(value), options)
    decode = _time_call(lambda: codec.decode(data), options)
    return Measurement(
        codec=codec.name,
        payload=payload_name,
        wire_safe=codec.wire_safe,
        size_bytes=len(data),
        encode=encode,
        decode=decode,
        roundtrip_ok=roundtrip_ok,
    )
