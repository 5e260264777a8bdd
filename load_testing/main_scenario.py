"""The ``main`` scenario: Conveyor against the minimal reference system, in the same run.

A reference system (``load_testing/reference``) and a Conveyor stack run side by side on the
same brokers. After a warm-up, rounds alternate the reference's ``POST /predict``, Conveyor's
``POST /predict/<model_a>`` (an echo, the same work as the reference's worker) and
``<model_b>`` (scikit-learn, batching), each driven by ``wrk -t1 -c<--connections>`` for
``--seconds``. Printed: one row per system and round (req/s, p50/p90/p99, errors, CPU ms per
request of the gateway, the worker, and RabbitMQ and Redis where they run on this machine), the
model_a/reference ratio per round and overall, one client (c=1) against each in alternating
rounds, and goal 1's verdicts with issue 28's one-client guard (p50 no worse).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from load_testing import goals
from load_testing.reference.process import Reference
from load_testing.report import compare, ratio_lines, table
from load_testing.stack import Stack
from load_testing.targets import Target, alternate, brokers, conveyor_targets, with_brokers

__all__ = ["run_main"]


def run_main(args: argparse.Namespace, out: Path) -> list[goals.Verdict]:
    """The main scenario (see the module doc); returns goal 1's verdicts."""
    amqp_url, redis_url = brokers()
    with (
        Reference(out / "logs", amqp_url, redis_url) as reference,
        Stack(out / "logs", amqp_url=amqp_url, redis_url=redis_url) as stack,
    ):
        ref = Target(
            "reference",
            reference.url,
            {
                "gateway": reference.processes["gateway"].pid,
                "worker": reference.processes["worker"].pid,
            },
        )
        model_a, model_b = conveyor_targets(stack)
        targets = [with_brokers(t, amqp_url, redis_url) for t in (ref, model_a, model_b)]
        ref, model_a, model_b = targets
        rows = alternate(targets, args.rounds, args.seconds, args.connections, args.warmup)
        print(f"\nwrk -t1 -c{args.connections}, {args.seconds:g} s per round\n")
        print(table(rows))
        print()
        for line in ratio_lines(rows, model_a.name, ref.name):
            print(line)
        print("\nc=1 latency\n")
        print(table([]))
        single = alternate([ref, model_a], args.rounds, min(args.seconds, 5), 1, 1)
        print()
        verdicts = goals.throughput(compare(rows, model_a.name, ref.name))
        verdicts.append(goals.single_client(single, model_a.name, ref.name))
        for verdict in verdicts:
            print(verdict.line())
        return verdicts
