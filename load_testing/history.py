"""Read Locust's CSV output, chart it, and find where a step load saturates.

Locust writes ``<prefix>_stats.csv`` (totals per request name and an ``Aggregated`` row) and,
with ``--csv-full-history``, ``<prefix>_stats_history.csv`` (one row per second and name).
Only the ``Aggregated`` rows are used here.
"""

from __future__ import annotations

import csv
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

__all__ = [
    "Plateau",
    "Point",
    "Totals",
    "find_saturation",
    "plateaus",
    "plot_history",
    "read_history",
    "read_totals",
]

AGGREGATED = "Aggregated"


def _number(cell: str | None) -> float:
    try:
        return float(cell) if cell not in (None, "", "N/A") else math.nan
    except ValueError:
        return math.nan


@dataclass(frozen=True)
class Point:
    """One second of the run, all requests together. Percentiles are Locust's recent window."""

    timestamp: float
    users: int
    rps: float
    failures_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    total_requests: int
    total_failures: int


@dataclass(frozen=True)
class Totals:
    """The whole run, all requests together (the ``Aggregated`` row of ``_stats.csv``)."""

    requests: int
    failures: int
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float

    @property
    def failure_ratio(self) -> float:
        """Failed requests over all requests (1.0 when nothing was sent)."""
        return self.failures / self.requests if self.requests else 1.0


def _point(row: dict[str, str]) -> Point:
    return Point(
        timestamp=float(row["Timestamp"]),
        users=int(row["User Count"]),
        rps=_number(row["Requests/s"]),
        failures_per_s=_number(row["Failures/s"]),
        p50_ms=_number(row["50%"]),
        p95_ms=_number(row["95%"]),
        p99_ms=_number(row["99%"]),
        total_requests=int(row["Total Request Count"]),
        total_failures=int(row["Total Failure Count"]),
    )


def read_history(path: Path) -> list[Point]:
    """The ``Aggregated`` rows of a ``_stats_history.csv``, in time order."""
    points = []
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            if row.get("Name") != AGGREGATED:
                continue
            try:
                points.append(_point(row))
            except (KeyError, TypeError, ValueError):
                continue  # a row Locust is still writing
    return points


def read_totals(path: Path) -> Totals:
    """The ``Aggregated`` row of a ``_stats.csv``."""
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            if row.get("Name") == AGGREGATED:
                return Totals(
                    requests=int(_number(row["Request Count"])),
                    failures=int(_number(row["Failure Count"])),
                    rps=_number(row["Requests/s"]),
                    p50_ms=_number(row["50%"]),
                    p95_ms=_number(row["95%"]),
                    p99_ms=_number(row["99%"]),
                )
    return Totals(0, 0, 0.0, math.nan, math.nan, math.nan)


def _rates(points: Sequence[Point], counter: str) -> list[float]:
    """Per-second rate of a running total between consecutive points (no rolling window)."""
    rates = []
    for before, after in itertools.pairwise(points):
        seconds = after.timestamp - before.timestamp
        done = getattr(after, counter) - getattr(before, counter)
        rates.append(done / seconds if seconds > 0 else math.nan)
    return rates


def plot_history(points: Sequence[Point], path: Path, title: str) -> None:
    """Two panels over time: throughput (with users) and p50/p95/p99 latency."""
    start = points[0].timestamp if points else 0.0
    t = [p.timestamp - start for p in points]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    top.plot(t[1:], _rates(points, "total_requests"), label="requests/s")
    top.plot(t[1:], _rates(points, "total_failures"), label="failures/s", color="tab:red")
    top.set_ylabel("per second")
    top.set_title(title)
    users = top.twinx()
    users.step(t, [p.users for p in points], where="post", color="tab:gray", alpha=0.6)
    users.set_ylabel("users", color="tab:gray")
    top.legend(loc="upper left")
    for label, values in (
        ("p50", [p.p50_ms for p in points]),
        ("p95", [p.p95_ms for p in points]),
        ("p99", [p.p99_ms for p in points]),
    ):
        bottom.plot(t, values, label=label)
    bottom.set_ylabel("latency (ms)")
    bottom.set_xlabel("seconds since start")
    bottom.legend(loc="upper left")
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


@dataclass(frozen=True)
class Plateau:
    """A stretch of constant user count: its throughput (from request counts) and p95."""

    users: int
    seconds: float
    rps: float
    p95_ms: float


def plateaus(points: Sequence[Point], settle_s: float = 2.0) -> list[Plateau]:
    """Split the run into constant-user stretches; skip each one's first ``settle_s`` seconds.

    Throughput is the growth of the total request count over the stretch, so it does not lag
    like Locust's rolling ``Requests/s``; p95 is the last value of the stretch.
    """
    groups: list[list[Point]] = []
    for p in points:
        if p.users <= 0:
            continue
        if groups and groups[-1][0].users == p.users:
            groups[-1].append(p)
        else:
            groups.append([p])
    result = []
    for group in groups:
        settled = [p for p in group if p.timestamp - group[0].timestamp >= settle_s]
        if len(settled) < 2:
            continue
        seconds = settled[-1].timestamp - settled[0].timestamp
        done = settled[-1].total_requests - settled[0].total_requests
        result.append(Plateau(group[0].users, seconds, done / seconds, settled[-1].p95_ms))
    return result


def find_saturation(steps: Sequence[Plateau], min_gain: float = 0.25) -> Plateau | None:
    """The last plateau before throughput stops following the users, or None if it never does.

    Going from one plateau to the next, ``gain`` is the relative throughput increase divided by
    the relative user increase (1.0 = linear scaling). The first step whose gain is below
    ``min_gain`` marks saturation; the plateau before it is the saturation point.
    """
    for before, after in itertools.pairwise(steps):
        if after.users <= before.users or before.rps <= 0:
            continue
        gain = (after.rps / before.rps - 1) / (after.users / before.users - 1)
        if gain < min_gain:
            return before
    return None
