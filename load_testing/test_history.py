"""Reading Locust's CSV files and finding the saturation point of a step load."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from load_testing import history

HISTORY_FIELDS = [
    "Timestamp", "User Count", "Type", "Name", "Requests/s", "Failures/s", "50%", "66%", "75%",
    "80%", "90%", "95%", "98%", "99%", "99.9%", "99.99%", "100%", "Total Request Count",
    "Total Failure Count",
]  # fmt: skip


def _points(rates_by_users: list[tuple[int, float]], seconds_per_step: int) -> list[history.Point]:
    """A synthetic run: each (users, rate) step lasts ``seconds_per_step`` one-second rows."""
    points, total, t = [], 0.0, 1000.0
    for users, rate in rates_by_users:
        for _ in range(seconds_per_step):
            points.append(history.Point(t, users, rate, 0.0, 5.0, 9.0, 12.0, int(total), 0))
            total += rate
            t += 1
    return points


def test_plateaus_measure_throughput_from_request_counts() -> None:
    steps = history.plateaus(_points([(5, 40.0), (10, 80.0)], seconds_per_step=8), settle_s=2)
    assert [s.users for s in steps] == [5, 10]
    assert [round(s.rps, 6) for s in steps] == [40.0, 80.0]
    assert all(s.seconds == 5 for s in steps)


def test_saturation_is_the_last_step_before_throughput_stops_growing() -> None:
    rates = [(5, 50.0), (10, 100.0), (15, 140.0), (20, 145.0), (25, 146.0)]
    steps = history.plateaus(_points(rates, seconds_per_step=6))
    knee = history.find_saturation(steps)
    assert knee is not None
    assert knee.users == 15


def test_no_saturation_while_throughput_follows_users() -> None:
    steps = history.plateaus(_points([(u, u * 10.0) for u in (5, 10, 15)], seconds_per_step=6))
    assert history.find_saturation(steps) is None


def test_read_history_keeps_aggregated_rows_and_skips_partial_ones(tmp_path: Path) -> None:
    path = tmp_path / "x_stats_history.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(HISTORY_FIELDS)
        writer.writerow([1, 0, "", "Aggregated", 0, 0, *["N/A"] * 11, 0, 0])
        writer.writerow([2, 3, "POST", "/predict/a", 4.5, 0, *[7] * 11, 9, 0])
        writer.writerow(
            [2, 3, "", "Aggregated", 4.5, 0.5, 6, 6, 6, 6, 8, 9, 9, 11, 11, 11, 11, 9, 1]
        )
        f.write("3,3,,Aggregated,5.0")  # a row still being written
    points = history.read_history(path)
    assert [p.users for p in points] == [0, 3]
    assert math.isnan(points[0].p50_ms)
    assert (points[1].p50_ms, points[1].p95_ms, points[1].p99_ms) == (6, 9, 11)
    assert (points[1].total_requests, points[1].total_failures) == (9, 1)
    history.plot_history(points, tmp_path / "h.png", "t")
    assert (tmp_path / "h.png").read_bytes().startswith(b"\x89PNG")


def test_failure_ratio_of_an_empty_run_counts_as_failed() -> None:
    empty = history.Totals(0, 0, 0.0, math.nan, math.nan, math.nan)
    assert empty.failure_ratio == 1.0
    assert history.Totals(200, 1, 10.0, 1, 2, 3).failure_ratio == 0.005
