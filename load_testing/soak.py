"""The ``soak`` scenario: model_a at full load for minutes, with the memory of its processes.

A stack starts; after the warm-up, ``wrk -c32`` drives model_a for ``--soak-seconds`` (300) in
slices of ``--soak-slice`` (30 s). Between slices the resident memory (RSS) of the gateway and
of model_a's worker is read from ``/proc``. Printed: one row per slice (req/s, p99, errors, both
RSS), then the start and end RSS of each process, its peak, and its growth from the first slice
to the last (flat memory: growth within a few MB, not rising slice after slice).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

from load_testing import goals, procstat, wrk
from load_testing.stack import Stack
from load_testing.targets import brokers, conveyor_targets

__all__ = ["Sample", "run_soak", "summary"]


@dataclass(frozen=True)
class Sample:
    """The state after one slice: seconds into the soak, its wrk result, RSS in MB."""

    seconds: float
    rps: float
    p99_ms: float
    errors: int
    gateway_mb: float
    worker_mb: float


def summary(samples: list[Sample], start: tuple[float, float]) -> list[str]:
    """The closing lines: start, end, peak and growth of each process's RSS."""
    lines = []
    for index, name in enumerate(("gateway", "worker")):
        values = [(s.gateway_mb, s.worker_mb)[index] for s in samples]
        growth = values[-1] - values[0]
        lines.append(
            f"{name} RSS: {start[index]:.0f} MB at the start, {values[-1]:.0f} MB at the end, "
            f"peak {max(values):.0f} MB; {growth:+.1f} MB from the first slice to the last"
        )
    return lines


def run_soak(args: argparse.Namespace, out: Path) -> list[goals.Verdict]:
    """The soak scenario (see the module doc); returns goal 4's verdicts."""
    amqp_url, redis_url = brokers()
    with Stack(out / "logs", amqp_url=amqp_url, redis_url=redis_url) as stack:
        model_a, _ = conveyor_targets(stack)
        api, worker = model_a.groups["gateway"], model_a.groups["worker"]
        start = (procstat.group_rss_mb(api), procstat.group_rss_mb(worker))
        wrk.run(model_a.url, seconds=args.warmup, connections=args.connections)
        print(f"soak: wrk -t1 -c{args.connections} on model_a, {args.soak_seconds:g} s in "
              f"slices of {args.soak_slice:g} s", flush=True)  # fmt: skip
        print("\n| t s | req/s | p99 ms | errors | gateway RSS MB | worker RSS MB |")
        print("|---|---|---|---|---|---|", flush=True)
        samples: list[Sample] = []
        began = time.monotonic()
        while time.monotonic() - began < args.soak_seconds:
            result = wrk.run(model_a.url, seconds=args.soak_slice, connections=args.connections)
            sample = Sample(time.monotonic() - began, result.rps, result.p99_ms, result.errors,
                            procstat.group_rss_mb(api), procstat.group_rss_mb(worker))  # fmt: skip
            samples.append(sample)
            print(f"| {sample.seconds:.0f} | {sample.rps:,.0f} | {sample.p99_ms:.1f} | "
                  f"{sample.errors} | {sample.gateway_mb:.0f} | {sample.worker_mb:.0f} |",
                  flush=True)  # fmt: skip
        print()
        for line in summary(samples, start):
            print(line)
        rss = {"gateway": [s.gateway_mb for s in samples], "worker": [s.worker_mb for s in samples]}
        verdicts = goals.memory(samples[-1].seconds if samples else 0.0, rss)
        for verdict in verdicts:
            print(verdict.line())
        return verdicts
