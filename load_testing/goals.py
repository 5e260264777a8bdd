"""The performance goals, checked against what a scenario measured in its own run.

The goals (docs/performance.md, "Goals and their latest verdicts"): 1 throughput against the
reference (and, issue 28's guard, one client's p50 against the reference's), 2 behaviour under
overload, 3 dynamic batching, 4 flat memory; and issue 29's, met by
the tensors scenario: gRPC against REST on model_a, big tensors' bytes per second against the
reference, and ``MAX_BODY_BYTES`` still refusing bigger bodies. Each scenario ends with
one verdict line per goal it measures, so a run's output says by itself what it shows: the
figure, the target, and ``met`` or ``NOT MET``. Only same-run figures are
compared (ratios, and bounds that do not depend on the machine's speed). The checks are pure
functions of the figures, tested without a stack (``test_goals``).

Where the goal leaves a number open, the bound chosen here is named in the verdict:
"queues drained within seconds" is 10 s; "RSS stays flat" is at most 10 MB of growth from the
first slice of the soak to the last, over at least 5 minutes.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from load_testing.report import Comparison, Row, latency

__all__ = [
    "DRAIN_SECONDS",
    "FLAT_RSS_MB",
    "SOAK_SECONDS",
    "Verdict",
    "batching",
    "big_tensors",
    "expected_goodput",
    "grpc_vs_rest",
    "memory",
    "overload",
    "refusal_ceiling_us",
    "single_client",
    "throughput",
]

DRAIN_SECONDS = 10.0
"""Goal 2: the model's queues are empty this soon after the overload stops."""

FLAT_RSS_MB = 10.0
"""Goal 4: the most a process's RSS may grow from the soak's first slice to its last."""

SOAK_SECONDS = 300.0
"""Goal 4: the soak lasts at least this long."""

DOCUMENTED_5XX = frozenset({503, 504})
"""Goal 2: the only server errors overload may produce (README, "Errors")."""


@dataclass(frozen=True)
class Verdict:
    """One goal against one run: what was measured, the target, and whether it holds."""

    goal: str
    measured: str
    target: str
    met: bool

    def line(self) -> str:
        """``goal <goal>: <measured> (target <target>): met`` (or ``NOT MET``)."""
        return f"goal {self.goal}: {self.measured} (target {self.target}): " + (
            "met" if self.met else "NOT MET"
        )


def _x(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def _at_least(value: float | None, bound: float) -> bool:
    return value is not None and value >= bound


def _ratio_verdicts(
    goal: str, comparison: Comparison | None, bound: float, missing: str = "not measured"
) -> list[Verdict]:
    """``system`` reaches ``bound`` x ``baseline`` overall, with its worst p99 no worse."""
    if comparison is None:
        return [Verdict(goal, missing, f">= {bound:g}x", False)]
    c = comparison
    return [
        Verdict(
            goal,
            f"{c.system}/{c.baseline} req/s {_x(c.overall)}",
            f">= {bound:g}x",
            _at_least(c.overall, bound),
        ),
        Verdict(
            goal,
            f"worst p99 {c.worst_p99_ms:.1f} ms ({c.system}) vs {c.baseline_worst_p99_ms:.1f} ms "
            f"({c.baseline})",
            "no worse",
            c.worst_p99_ms <= c.baseline_worst_p99_ms,
        ),
    ]


def throughput(comparison: Comparison | None) -> list[Verdict]:
    """Goal 1: Conveyor >= 1.0x the reference overall and >= 0.8x in every round, p99 no worse."""
    verdicts = _ratio_verdicts("1 (throughput)", comparison, 1.0)
    if comparison is not None and comparison.rounds:
        ratios = [r.ratio for r in comparison.rounds]
        worst = None if any(r is None for r in ratios) else min(r for r in ratios if r is not None)
        verdicts.insert(
            1,
            Verdict(
                "1 (throughput)",
                f"worst round {_x(worst)}",
                ">= 0.8x in every round",
                _at_least(worst, 0.8),
            ),
        )
    return verdicts


def single_client(rows: Sequence[Row], system: str, baseline: str) -> Verdict:
    """Issue 28's guard: one client's p50 against ``system`` no worse than against ``baseline``,
    each the median of its rounds' p50s (rounds alternate, so both see the same drift)."""
    goal = "1 (one client)"
    ours = [row.result.p50_ms for row in rows if row.system == system]
    theirs = [row.result.p50_ms for row in rows if row.system == baseline]
    if not ours or not theirs:
        return Verdict(goal, "not measured", "p50 no worse than the reference's", False)
    mine, ref = statistics.median(ours), statistics.median(theirs)
    return Verdict(
        goal,
        f"c=1 p50 {latency(mine)} ms ({system}) vs {latency(ref)} ms ({baseline}), "
        f"median of {len(ours)} rounds",
        "no worse",
        mine <= ref,
    )


def batching(
    against_unbatched: Comparison | None, against_echo: Comparison | None
) -> list[Verdict]:
    """Goal 3: batched model_b >= 2x unbatched and >= 0.9x model_a (echo), p99 no worse."""
    return [
        *_ratio_verdicts("3 (batching)", against_unbatched, 2.0),
        *_ratio_verdicts("3 (batching)", against_echo, 0.9),
    ]


def grpc_vs_rest(comparison: Comparison | None, missing: str = "not measured") -> list[Verdict]:
    """Issue 29: gRPC ``ModelInfer`` of model_a >= 1.0x the REST ``/v2`` infer of the same
    model, worst p99 no worse; ``missing`` says why when it was not measured."""
    return _ratio_verdicts("gRPC vs REST", comparison, 1.0, f"not measured: {missing}")


def big_tensors(comparisons: Mapping[str, Comparison | str]) -> list[Verdict]:
    """Issue 29: each way of sending the 147 KB image (by name: a comparison with the reference
    carrying the same bytes, or why it was not measured) >= 0.8x the reference's bytes per
    second. Every request of both carries the same tensor bytes, so bytes/s is req/s."""
    verdicts = []
    for name, comparison in comparisons.items():
        if isinstance(comparison, str):
            verdicts.append(
                Verdict("big tensors", f"{name}: not measured: {comparison}", ">= 0.8x", False)
            )
            continue
        verdicts.append(
            Verdict(
                "big tensors",
                f"{comparison.system}/{comparison.baseline} bytes/s {_x(comparison.overall)}",
                ">= 0.8x",
                _at_least(comparison.overall, 0.8),
            )
        )
    return verdicts


def overload(
    *,
    capacity: float,
    goodput: float,
    probe_p99_ms: float,
    timeout_ms: float,
    statuses: Mapping[int, int],
    non_json: int,
    rss_before_mb: float,
    rss_settled_mb: float,
    drained_s: float,
) -> list[Verdict]:
    """Goal 2 at ``--factor`` x capacity: goodput, accepted p99, server errors, JSON bodies,
    the gateway's RSS afterwards, and how soon the queues drained."""
    share = goodput / capacity if capacity > 0 else 0.0
    undocumented = {
        s: n for s, n in sorted(statuses.items()) if s >= 500 and s not in DOCUMENTED_5XX
    }
    growth = rss_settled_mb - rss_before_mb
    goal = "2 (overload)"
    return [
        Verdict(goal, f"goodput {share:.0%} of capacity", ">= 90%", share >= 0.9),
        Verdict(
            goal,
            f"p99 of accepted requests {probe_p99_ms:.0f} ms",
            f"<= their timeout, {timeout_ms:.0f} ms",
            probe_p99_ms <= timeout_ms,
        ),
        Verdict(
            goal,
            f"5xx other than 503/504: {sum(undocumented.values())}"
            + (f" {undocumented}" if undocumented else ""),
            "0",
            not undocumented,
        ),
        Verdict(goal, f"answers without a JSON body: {non_json}", "0", non_json == 0),
        Verdict(
            goal,
            f"gateway RSS {rss_before_mb:.0f} MB before, {rss_settled_mb:.0f} MB 10 s after "
            f"({growth:+.0f} MB)",
            "within 50 MB of the start",
            growth <= 50,
        ),
        Verdict(
            goal,
            f"queues drained in {drained_s:.1f} s",
            f"<= {DRAIN_SECONDS:g} s",
            drained_s <= DRAIN_SECONDS,
        ),
    ]


def expected_goodput(served_us: float, refusal_us: float, factor: float) -> float:
    """Goal 2's goodput (a share of capacity) that a CPU budget gives when offered ``factor`` x
    its capacity, if a served request costs ``served_us`` of the budget (budget / capacity, as
    in the closed loop) and a refusal ``refusal_us``: it serves ``g`` and refuses
    ``factor - g`` capacities within the same budget, ``s = g s + (factor - g) q``, so
    ``g = (s - factor q) / (s - q)``, at most 1 (docs/performance.md, "Goodput, worked out")."""
    if served_us <= refusal_us:
        return 0.0
    return max(0.0, min(1.0, (served_us - factor * refusal_us) / (served_us - refusal_us)))


def refusal_ceiling_us(served_us: float, factor: float, target: float = 0.9) -> float:
    """The most a refusal may cost for ``expected_goodput`` to reach ``target`` at ``factor``:
    ``q <= (1 - target) s / (factor - target)``."""
    if factor <= target:
        return served_us
    return (1 - target) * served_us / (factor - target)


def memory(seconds: float, rss_mb: Mapping[str, Sequence[float]]) -> list[Verdict]:
    """Goal 4: each process's RSS (one reading per slice) grows at most ``FLAT_RSS_MB`` from
    the first slice to the last, over a soak of at least ``SOAK_SECONDS``."""
    verdicts = []
    for name, values in rss_mb.items():
        growth = values[-1] - values[0] if values else float("inf")
        verdicts.append(
            Verdict(
                "4 (memory)",
                f"{name} RSS {growth:+.1f} MB from the first slice to the last, "
                f"over {seconds:.0f} s",
                f"<= {FLAT_RSS_MB:g} MB over >= {SOAK_SECONDS:g} s",
                growth <= FLAT_RSS_MB and seconds >= SOAK_SECONDS,
            )
        )
    return verdicts
