"""CPU time and resident memory of a process, from ``/proc`` (Linux)."""

from __future__ import annotations

import os
import resource
from pathlib import Path

__all__ = [
    "children_cpu_seconds",
    "cpu_seconds",
    "group_cpu_seconds",
    "group_pids",
    "group_rss_mb",
    "listener_pid",
    "machine_cpu",
    "rss_mb",
    "thread_cpu_seconds",
]

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds ``pid`` has used (0 when it is gone)."""
    return _stat_cpu_seconds(Path(f"/proc/{pid}/stat"))


def thread_cpu_seconds(tid: int) -> float:
    """User plus system CPU seconds thread ``tid`` of this process has used (0 when gone)."""
    return _stat_cpu_seconds(Path(f"/proc/self/task/{tid}/stat"))


def _stat_cpu_seconds(path: Path) -> float:
    try:
        stat = path.read_text()
    except OSError:
        return 0.0
    fields = stat.rpartition(")")[2].split()
    # After the command: state is field 3, utime 14 and stime 15 (1-based, man proc).
    return (int(fields[11]) + int(fields[12])) / _TICKS


def group_pids(pgid: int) -> list[int]:
    """The processes of process group ``pgid`` now (a service started in its own session is
    its leader's group: the leader and every child it started)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        # After the command: state, ppid, pgrp (fields 3-5, 1-based, man proc).
        if int(fields[2]) == pgid:
            members.append(int(entry.name))
    return sorted(members)


def group_cpu_seconds(pgid: int) -> float:
    """User plus system CPU seconds of the processes of group ``pgid`` that run now."""
    return sum(cpu_seconds(pid) for pid in group_pids(pgid))


def group_rss_mb(pgid: int) -> float:
    """Resident set size of the processes of group ``pgid``, summed, in MB."""
    return sum(rss_mb(pid) for pid in group_pids(pgid))


def children_cpu_seconds() -> float:
    """User plus system CPU seconds of this process's finished children (wrk's runs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def machine_cpu() -> tuple[int, int]:
    """Busy and total jiffies of the whole machine so far, from ``/proc/stat``."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal
    return total - idle, total


def listener_pid(port: int) -> int | None:
    """The process listening on TCP ``port`` on this machine (IPv4 or IPv6), or None (not
    listening here, or not ours to see): ``/proc/net/tcp*`` gives the socket, ``/proc/*/fd``
    its owner."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(f"socket:[{inode}]")
    if not inodes:
        return None
    for process in Path("/proc").iterdir():
        if not process.name.isdigit():
            continue
        try:
            for fd in (process / "fd").iterdir():
                if os.readlink(fd) in inodes:
                    return int(process.name)
        except OSError:
            continue
    return None
