"""The ``processes`` scenario: the main sync load on a gateway of one process and of two.

Two stacks run side by side on the same brokers, one started with ``API_WORKERS=1`` and one
with ``API_WORKERS=2`` (the gateway's setting: that many gateway processes serving one port).
The setting reaches the gateway through the stack's environment, as the other scenarios pass
theirs (``MAX_BATCH_SIZE``, ``MAX_INFLIGHT``). After a warm-up, rounds alternate model_a (the
echo, main's Conveyor side) on each stack, ``wrk -t1 -c<--connections>`` for ``--seconds``.
Each gateway is read as its whole process group, so its CPU per request covers every process
it runs.

Printed: one row per stack and round, how many processes each gateway ran, each stack's req/s
(all requests over all its seconds), p50 (the rounds' median) and p99 (the rounds' worst), and
the ratio of 2 processes to 1 per round and overall. A gateway that ignores ``API_WORKERS``
runs as many processes in both stacks; the scenario then says that the ratio compares two
equal gateways.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path

from load_testing import goals, procstat
from load_testing.report import Row, ratio_lines, table
from load_testing.stack import Stack, environment
from load_testing.targets import alternate, brokers, conveyor_targets, with_brokers

__all__ = ["ONE", "SETTING", "TWO", "report_lines", "run_processes", "system_line"]

SETTING = "API_WORKERS"
ONE = f"{SETTING}=1"
TWO = f"{SETTING}=2"


def run_processes(args: argparse.Namespace, out: Path) -> list[goals.Verdict]:
    """The processes scenario (see the module doc); it measures no goal, so returns none."""
    amqp_url, redis_url = brokers()
    with contextlib.ExitStack() as stacks:
        targets = []
        gateways = {}
        for label, count in ((ONE, "1"), (TWO, "2")):
            with environment(**{SETTING: count}):
                stack = Stack(out / "logs" / label, amqp_url=amqp_url, redis_url=redis_url)
                stacks.enter_context(stack)
            model_a, _ = conveyor_targets(stack)
            named = dataclasses.replace(model_a, name=label)
            targets.append(with_brokers(named, amqp_url, redis_url))
            gateways[label] = stack.services["api"].pid
        rows = alternate(targets, args.rounds, args.seconds, args.connections, args.warmup)
        counts = {label: len(procstat.group_pids(pid)) for label, pid in gateways.items()}
        print(f"\nwrk -t1 -c{args.connections}, {args.seconds:g} s per round, model_a\n")
        print(table(rows))
        print()
        for line in report_lines(rows, counts):
            print(line)
        return []


def system_line(rows: Sequence[Row], system: str) -> str:
    """``system``'s rows together: req/s over all its requests and seconds, the median of its
    rounds' p50 and the worst of their p99."""
    own = [row.result for row in rows if row.system == system]
    if not own:
        return f"{system}: not measured"
    seconds = sum(r.duration_s for r in own)
    rps = sum(r.requests for r in own) / seconds if seconds > 0 else 0.0
    p50 = statistics.median(r.p50_ms for r in own)
    p99 = max(r.p99_ms for r in own)
    return f"{system}: {rps:,.0f} req/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms"


def report_lines(rows: Sequence[Row], processes: Mapping[str, int]) -> list[str]:
    """The closing lines: the gateway processes each stack ran (``processes``, by system),
    each stack's figures, the 2-to-1 ratios, and a warning when 2 ran no more than 1."""
    lines = [
        "gateway processes: "
        + ", ".join(f"{label} ran {processes.get(label, 0)}" for label in (ONE, TWO)),
        system_line(rows, ONE),
        system_line(rows, TWO),
        *ratio_lines(rows, TWO, ONE),
    ]
    if processes.get(TWO, 0) <= processes.get(ONE, 0):
        lines.append(
            f"note: the gateway ran no more processes with {TWO} than with {ONE}: it ignores "
            f"{SETTING}, and the ratio compares two equal gateways"
        )
    return lines
