"""The benchmark's rows and tables: formatting only, so it can be tested without a stack."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from load_testing.wrk import WrkResult

__all__ = ["Row", "ratio_lines", "table"]


@dataclass(frozen=True)
class Row:
    """One measured round of one system; ``cpu_ms`` maps a process to its CPU ms per request."""

    system: str
    round: int
    result: WrkResult
    cpu_ms: dict[str, float]


def table(rows: Sequence[Row]) -> str:
    """A Markdown table: req/s, p50/p90/p99, errors and CPU per request of each row."""
    lines = [
        "| system | round | req/s | p50 ms | p90 ms | p99 ms | errors | CPU ms/req |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        r = row.result
        cpu = ", ".join(f"{name} {ms:.2f}" for name, ms in row.cpu_ms.items())
        lines.append(
            f"| {row.system} | {row.round} | {r.rps:,.0f} | {r.p50_ms:.1f} | {r.p90_ms:.1f} "
            f"| {r.p99_ms:.1f} | {r.errors} | {cpu} |"
        )
    return "\n".join(lines)


def _total_rps(rows: Sequence[Row]) -> float:
    requests = sum(row.result.requests for row in rows)
    seconds = sum(row.result.duration_s for row in rows)
    return requests / seconds if seconds else 0.0


def ratio_lines(rows: Sequence[Row], system: str, baseline: str) -> list[str]:
    """``system``/``baseline`` throughput and p99 per round (rounds both ran) and overall."""
    by_round: dict[int, dict[str, Row]] = {}
    for row in rows:
        by_round.setdefault(row.round, {})[row.system] = row
    lines = []
    for number, systems in sorted(by_round.items()):
        if system in systems and baseline in systems:
            ours, theirs = systems[system].result, systems[baseline].result
            lines.append(
                f"round {number}: {system}/{baseline} req/s {_ratio(ours.rps, theirs.rps)}, "
                f"p99 {ours.p99_ms:.1f} vs {theirs.p99_ms:.1f} ms"
            )
    ours_rows = [row for row in rows if row.system == system]
    theirs_rows = [row for row in rows if row.system == baseline]
    if ours_rows and theirs_rows:
        worst = max(row.result.p99_ms for row in ours_rows)
        worst_base = max(row.result.p99_ms for row in theirs_rows)
        lines.append(
            f"overall: {system}/{baseline} req/s "
            f"{_ratio(_total_rps(ours_rows), _total_rps(theirs_rows))}, "
            f"worst p99 {worst:.1f} vs {worst_base:.1f} ms"
        )
    return lines


def _ratio(ours: float, theirs: float) -> str:
    return f"{ours / theirs:.2f}x" if theirs > 0 else "n/a"
