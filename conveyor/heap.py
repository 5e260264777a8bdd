"""The garbage collector's settings for a long-running service (the gateway, every worker).

Two things, both once start-up is done:

1. **What start-up allocated is frozen** (``gc.freeze``): the libraries, the app, the model. It
   lives as long as the process, and outside the collector's reach it no longer makes each full
   collection a pause of tens of milliseconds.
2. **In the gateway, the youngest generation is collected every 10,000 net allocations instead
   of 700.** Nearly everything a request allocates is freed by reference counting within the
   request. But under load hundreds of requests are in flight, each holding its coroutine,
   futures and buffers for tens or hundreds of milliseconds. At 700 the collector examined these
   again and again and promoted them to the older generations, whose collections then traversed
   them all: at 3x capacity that was 10-13 % of the gateway's CPU (1.3 s in 5,200 young, 1.6 s
   in 480 middle and 0.5 s in 44 full collections over 30 s). At 10,000 most of them are gone
   before the collector looks: 0.4-0.6 s in 43-52 collections in the same runs. Python 3.13
   itself now starts at 2,000.

   A worker keeps the interpreter's threshold. It holds far fewer objects in flight (its
   prefetch, not hundreds of waiting requests): its collector took 0.13 s of a whole overload
   run at 700 and 0.05 s at 10,000, nothing worth the larger heap between collections (a soak
   with 10,000 ended with the worker 3 MB above its first slice, against under 1 before).
"""

from __future__ import annotations

import gc

__all__ = ["GEN0_THRESHOLD", "settle_heap"]

GEN0_THRESHOLD = 10_000
"""Net allocations of container objects between two collections of the youngest generation."""


def settle_heap(gen0_threshold: int | None = GEN0_THRESHOLD) -> None:
    """Collect once, freeze what is left, and set the youngest generation's threshold to
    ``gen0_threshold`` (``None``: keep the interpreter's; the older generations' thresholds
    stay as they are). Call it once, when start-up is done and before serving."""
    gc.collect()
    gc.freeze()
    if gen0_threshold is not None:
        _, middle, oldest = gc.get_threshold()
        gc.set_threshold(gen0_threshold, middle, oldest)
