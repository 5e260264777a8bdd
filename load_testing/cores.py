"""Pinning processes to CPUs, every thread of them (Linux ``sched_setaffinity``).

A scenario that gives a model cores of its own pins the model's processes to them and everything
else (the gateway, the brokers, the load generator) to the rest, as a deployment that keeps a
model on cores of its own would run.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path

from load_testing import procstat

__all__ = ["pin", "pin_group", "split"]


def split(model_cores: int) -> tuple[set[int], set[int]]:
    """The last ``model_cores`` CPUs this process may use, and the others; ``ValueError`` when
    that leaves none for the others."""
    cpus = sorted(os.sched_getaffinity(0))
    if not 0 < model_cores < len(cpus):
        raise ValueError(f"{model_cores} model cores of {len(cpus)}: leaves none for the rest")
    return set(cpus[-model_cores:]), set(cpus[:-model_cores])


def pin(pids: Iterable[int], cpus: set[int]) -> None:
    """Every thread of each process of ``pids`` (those still running) to ``cpus``."""
    for pid in pids:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            for task in Path(f"/proc/{pid}/task").iterdir():
                with contextlib.suppress(ProcessLookupError):
                    os.sched_setaffinity(int(task.name), cpus)


def pin_group(pgid: int, cpus: set[int]) -> None:
    """Every process of the process group ``pgid`` to ``cpus``."""
    pin(procstat.group_pids(pgid), cpus)
