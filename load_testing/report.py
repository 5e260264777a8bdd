"""The benchmark's rows and tables: formatting only, so it can be tested without a stack."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from load_testing.wrk import WrkResult

__all__ = [
    "Comparison",
    "RoundRatio",
    "Row",
    "compare",
    "cpu_ms_per_mb",
    "latency",
    "ratio_lines",
    "table",
    "tensor_ratio_lines",
    "tensor_table",
]

MB = 1_000_000
"""A megabyte (decimal) of tensor data."""


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
            f"| {row.system} | {row.round} | {r.rps:,.0f} | {latency(r.p50_ms)} "
            f"| {latency(r.p90_ms)} | {latency(r.p99_ms)} | {r.errors} | {cpu} |"
        )
    return "\n".join(lines)


def latency(ms: float) -> str:
    """A latency in ms: hundredths below 10 ms (one client's answers differ by less than a
    tenth), tenths above."""
    return f"{ms:.2f}" if ms < 10 else f"{ms:.1f}"


def _total_rps(rows: Sequence[Row]) -> float:
    requests = sum(row.result.requests for row in rows)
    seconds = sum(row.result.duration_s for row in rows)
    return requests / seconds if seconds else 0.0


@dataclass(frozen=True)
class RoundRatio:
    """One round both systems ran: throughput ratio (``None`` if the baseline served nothing)
    and each one's p99."""

    round: int
    ratio: float | None
    p99_ms: float
    baseline_p99_ms: float


@dataclass(frozen=True)
class Comparison:
    """``system`` against ``baseline`` over a run: per round, and overall (all requests over
    all seconds of each; the worst p99 of each)."""

    system: str
    baseline: str
    rounds: tuple[RoundRatio, ...]
    overall: float | None
    worst_p99_ms: float
    baseline_worst_p99_ms: float


def compare(rows: Sequence[Row], system: str, baseline: str) -> Comparison | None:
    """``system``/``baseline`` throughput and p99 from ``rows``; ``None`` unless both ran."""
    ours_rows = [row for row in rows if row.system == system]
    theirs_rows = [row for row in rows if row.system == baseline]
    if not ours_rows or not theirs_rows:
        return None
    theirs_by_round = {row.round: row.result for row in theirs_rows}
    rounds = tuple(
        RoundRatio(
            row.round,
            _quotient(row.result.rps, theirs_by_round[row.round].rps),
            row.result.p99_ms,
            theirs_by_round[row.round].p99_ms,
        )
        for row in sorted(ours_rows, key=lambda row: row.round)
        if row.round in theirs_by_round
    )
    return Comparison(
        system,
        baseline,
        rounds,
        _quotient(_total_rps(ours_rows), _total_rps(theirs_rows)),
        max(row.result.p99_ms for row in ours_rows),
        max(row.result.p99_ms for row in theirs_rows),
    )


def ratio_lines(rows: Sequence[Row], system: str, baseline: str) -> list[str]:
    """``system``/``baseline`` throughput and p99 per round (rounds both ran) and overall."""
    comparison = compare(rows, system, baseline)
    if comparison is None:
        return []
    lines = [
        f"round {r.round}: {system}/{baseline} req/s {_ratio(r.ratio)}, "
        f"p99 {r.p99_ms:.1f} vs {r.baseline_p99_ms:.1f} ms"
        for r in comparison.rounds
    ]
    lines.append(
        f"overall: {system}/{baseline} req/s {_ratio(comparison.overall)}, "
        f"worst p99 {comparison.worst_p99_ms:.1f} vs {comparison.baseline_worst_p99_ms:.1f} ms"
    )
    return lines


def _quotient(ours: float, theirs: float) -> float | None:
    return ours / theirs if theirs > 0 else None


def _ratio(value: float | None) -> str:
    return f"{value:.2f}x" if value is not None else "n/a"


def cpu_ms_per_mb(rows: Sequence[Row], process: str, tensor_bytes: int) -> float | None:
    """CPU ms ``process`` spent per MB of tensors over ``rows`` (weighted by their requests);
    None when it was not read or no tensor bytes were carried."""
    read = [row for row in rows if process in row.cpu_ms]
    requests = sum(row.result.requests for row in read)
    if not read or tensor_bytes <= 0 or requests == 0:
        return None
    per_request = sum(row.cpu_ms[process] * row.result.requests for row in read) / requests
    return per_request / (tensor_bytes / MB)


def tensor_table(rows: Sequence[Row], tensor_bytes: Mapping[str, int]) -> str:
    """A Markdown table of big-tensor rows: req/s, MB/s of tensors (``tensor_bytes`` per
    request of each system, both ways), p50/p99, errors, unexpected answers, the gateway's CPU
    ms per MB and each process's CPU ms per request."""
    lines = [
        "| system | round | req/s | MB/s | p50 ms | p99 ms | errors | unexpected "
        "| gateway CPU ms/MB | CPU ms/req |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        r = row.result
        size = tensor_bytes.get(row.system, 0)
        rate = f"{r.rps * size / MB:,.1f}" if size else "-"
        per_mb = cpu_ms_per_mb([row], "gateway", size)
        gateway = f"{per_mb:.2f}" if per_mb is not None else "-"
        cpu = ", ".join(f"{name} {ms:.2f}" for name, ms in row.cpu_ms.items())
        lines.append(
            f"| {row.system} | {row.round} | {r.rps:,.0f} | {rate} | {r.p50_ms:.1f} "
            f"| {r.p99_ms:.1f} | {r.errors} | {r.unexpected} | {gateway} | {cpu} |"
        )
    return "\n".join(lines)


def tensor_ratio_lines(
    rows: Sequence[Row], system: str, baseline: str, tensor_bytes: Mapping[str, int]
) -> list[str]:
    """``system`` beside ``baseline``: bytes/s per round and overall (req/s scaled by the
    tensor bytes of a request of each), the gateway's CPU per MB of each, and the worst p99 of
    each."""
    comparison = compare(rows, system, baseline)
    ours_size, theirs_size = tensor_bytes.get(system, 0), tensor_bytes.get(baseline, 0)
    if comparison is None or ours_size <= 0 or theirs_size <= 0:
        return []
    scale = ours_size / theirs_size

    def scaled(ratio: float | None) -> str:
        return _ratio(None if ratio is None else ratio * scale)

    rounds = ", ".join(scaled(r.ratio) for r in comparison.rounds)
    ours = cpu_ms_per_mb([r for r in rows if r.system == system], "gateway", ours_size)
    theirs = cpu_ms_per_mb([r for r in rows if r.system == baseline], "gateway", theirs_size)
    cpu = (
        f"gateway CPU {ours:.2f} vs {theirs:.2f} ms/MB"
        if ours is not None and theirs is not None
        else "gateway CPU per MB n/a"
    )
    return [
        f"{system}/{baseline}: bytes/s {scaled(comparison.overall)} (rounds {rounds}), {cpu}, "
        f"worst p99 {comparison.worst_p99_ms:.1f} vs {comparison.baseline_worst_p99_ms:.1f} ms"
    ]
