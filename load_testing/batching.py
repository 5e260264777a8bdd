"""The ``batching`` scenario: model_b with dynamic batching on and off, and model_a.

Two stacks run side by side on the same brokers: one with the default ``MAX_BATCH_SIZE``
(model_b's own, 32), one with ``MAX_BATCH_SIZE=1`` (batching off). Rounds alternate between
batched model_b, unbatched model_b and model_a (the echo), each with ``wrk -c32``; then one
client (c=1) on batched and unbatched model_b, where a batch never fills and each request waits
out the batch delay until the worker's scheduler stops waiting for partners that do not come.
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

from load_testing import goals
from load_testing.report import compare, ratio_lines, table
from load_testing.stack import Stack, environment
from load_testing.targets import alternate, brokers, conveyor_targets, measure, with_brokers

__all__ = ["run_batching"]


def run_batching(args: argparse.Namespace, out: Path) -> list[goals.Verdict]:
    """The batching scenario (see the module doc); returns goal 3's verdicts."""
    amqp_url, redis_url = brokers()
    with contextlib.ExitStack() as stacks:
        batched = stacks.enter_context(
            Stack(out / "logs" / "batched", amqp_url=amqp_url, redis_url=redis_url)
        )
        with environment(MAX_BATCH_SIZE="1"):
            unbatched = Stack(out / "logs" / "unbatched", amqp_url=amqp_url, redis_url=redis_url)
            stacks.enter_context(unbatched)
        model_a, model_b = conveyor_targets(batched, "batched")
        _, model_b_off = conveyor_targets(unbatched, "unbatched")
        targets = [with_brokers(t, amqp_url, redis_url) for t in (model_b, model_b_off, model_a)]
        rows = alternate(targets, args.rounds, args.seconds, args.connections, args.warmup)
        print(f"\nwrk -t1 -c{args.connections}, {args.seconds:g} s per round\n")
        print(table(rows))
        print()
        for line in ratio_lines(rows, model_b.name, model_b_off.name):
            print(line)
        for line in ratio_lines(rows, model_b.name, model_a.name):
            print(line)
        # What the batch delay costs a lone client, whose batch never fills.
        single = [measure(t, 1, min(args.seconds, 5), 1) for t in targets[:2]]
        print("\nc=1 latency\n")
        print(table(single))
        print()
        verdicts = goals.batching(
            compare(rows, model_b.name, model_b_off.name), compare(rows, model_b.name, model_a.name)
        )
        for verdict in verdicts:
            print(verdict.line())
        return verdicts
