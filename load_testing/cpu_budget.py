"""A CPU budget for the system under test, so that a load generator on the same machine does
not take the system's CPU: the closest this machine gets to clients on other machines.

:class:`CpuBudget` moves processes into a new cgroup whose CPU quota is ``cores`` (cgroup v2
``cpu.max``, or v1's ``cpu`` controller: ``cpu.cfs_quota_us``), with a 10 ms period so a
throttled group waits at most that long. On leaving it moves them back to the cgroup they came
from and removes its own. Needs root (or a delegated cgroup) and a writable cgroup file system.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

__all__ = ["CpuBudget", "CpuBudgetError"]

PERIOD_US = 10_000
CGROUP_ROOT = Path("/sys/fs/cgroup")


class CpuBudgetError(RuntimeError):
    """No cgroup CPU controller to write to here."""


def _hierarchy(root: Path) -> tuple[Path, bool]:
    """The mount to create the group in, and whether it is cgroup v2."""
    controllers = root / "cgroup.controllers"
    if controllers.exists() and "cpu" in controllers.read_text().split():
        return root, True
    if (root / "cpu" / "cpu.cfs_quota_us").exists():
        return root / "cpu", False
    raise CpuBudgetError(f"no cgroup cpu controller under {root}")


def _current_group(pid: int, base: Path, v2: bool) -> Path:
    """The cgroup of ``pid`` in the hierarchy mounted at ``base``."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if (v2 and controllers == "") or (not v2 and "cpu" in controllers.split(",")):
            return base / path.lstrip("/")
    return base


class CpuBudget:
    """Processes ``pids`` (with all their threads) confined to ``cores`` CPUs, as a context."""

    def __init__(self, cores: float, pids: Iterable[int], root: Path = CGROUP_ROOT) -> None:
        if cores <= 0:
            raise ValueError("cores must be positive")
        self.cores = cores
        self.pids = tuple(pids)
        self._base, self._v2 = _hierarchy(root)
        self.group = self._base / f"conveyor-bench-{os.getpid()}"
        self._origins: dict[int, Path] = {}

    def __enter__(self) -> CpuBudget:
        self.group.mkdir()
        quota = max(1000, round(self.cores * PERIOD_US))
        if self._v2:
            (self.group / "cpu.max").write_text(f"{quota} {PERIOD_US}")
        else:
            (self.group / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (self.group / "cpu.cfs_quota_us").write_text(str(quota))
        try:
            for pid in self.pids:
                self._origins[pid] = _current_group(pid, self._base, self._v2)
                (self.group / "cgroup.procs").write_text(str(pid))
        except BaseException:
            self._release()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._release()

    def throttled_seconds(self) -> float:
        """How long the group has been held back by its quota so far."""
        stat = dict(line.split() for line in (self.group / "cpu.stat").read_text().splitlines())
        if "throttled_usec" in stat:
            return int(stat["throttled_usec"]) / 1e6
        return int(stat.get("throttled_time", 0)) / 1e9

    def _release(self) -> None:
        """Every process back where it came from (also the children it started), then the
        group removed."""
        procs = self.group / "cgroup.procs"
        if not procs.exists():
            return
        for line in procs.read_text().split():
            pid = int(line)
            origin = self._origins.get(pid, self._base)
            try:
                (origin / "cgroup.procs").write_text(str(pid))
            except OSError:  # its origin is gone, or the process: the hierarchy's root then
                try:
                    (self._base / "cgroup.procs").write_text(str(pid))
                except OSError:
                    continue
        self.group.rmdir()
