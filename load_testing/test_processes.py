"""The processes scenario's closing lines: each stack's figures, the 2-to-1 ratio, and the
warning when the gateway ignored ``API_WORKERS`` (no stack, no wrk needed)."""

from __future__ import annotations

from load_testing.processes import ONE, TWO, report_lines, system_line
from load_testing.report import Row
from load_testing.wrk import WrkResult


def _row(system: str, number: int, rps: float, p50_ms: float, p99_ms: float) -> Row:
    result = WrkResult(
        requests=int(rps * 10), duration_s=10.0, p50_ms=p50_ms, p90_ms=p99_ms, p99_ms=p99_ms,
        max_ms=p99_ms, statuses={200: int(rps * 10)},
    )  # fmt: skip
    return Row(system, number, result, {})


ROWS = [
    _row(ONE, 1, 2000, 8.0, 20.0), _row(TWO, 1, 3000, 5.0, 15.0),
    _row(ONE, 2, 1000, 9.0, 30.0), _row(TWO, 2, 1600, 6.0, 12.0),
    _row(ONE, 3, 1500, 7.0, 25.0), _row(TWO, 3, 2600, 7.0, 14.0),
]  # fmt: skip


def test_a_system_line_pools_requests_takes_the_median_p50_and_the_worst_p99() -> None:
    # (2000 + 1000 + 1500) * 10 requests over 30 s; p50s 8, 9, 7; p99s 20, 30, 25.
    assert system_line(ROWS, ONE) == f"{ONE}: 1,500 req/s, p50 8.0 ms, p99 30.0 ms"
    assert system_line(ROWS, TWO) == f"{TWO}: 2,400 req/s, p50 6.0 ms, p99 15.0 ms"
    assert system_line(ROWS, "other") == "other: not measured"


def test_the_report_gives_2_against_1_per_round_and_overall() -> None:
    lines = report_lines(ROWS, {ONE: 1, TWO: 3})
    assert lines[0] == f"gateway processes: {ONE} ran 1, {TWO} ran 3"
    assert lines[3] == f"round 1: {TWO}/{ONE} req/s 1.50x, p99 15.0 vs 20.0 ms"
    assert lines[4] == f"round 2: {TWO}/{ONE} req/s 1.60x, p99 12.0 vs 30.0 ms"
    assert lines[5] == f"round 3: {TWO}/{ONE} req/s 1.73x, p99 14.0 vs 25.0 ms"
    assert lines[6] == f"overall: {TWO}/{ONE} req/s 1.60x, worst p99 15.0 vs 30.0 ms"
    assert len(lines) == 7


def test_a_gateway_that_ignores_the_setting_is_called_out() -> None:
    lines = report_lines(ROWS, {ONE: 1, TWO: 1})
    assert lines[-1].startswith(f"note: the gateway ran no more processes with {TWO}")


def test_rounds_the_other_stack_missed_have_no_ratio() -> None:
    lines = report_lines(ROWS[:3], {ONE: 1, TWO: 2})
    assert f"round 1: {TWO}/{ONE} req/s 1.50x, p99 15.0 vs 20.0 ms" in lines
    assert not any(line.startswith("round 2") for line in lines)
