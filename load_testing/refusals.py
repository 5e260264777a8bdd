"""The ``refusals`` scenario: what one 429 past ``MAX_INFLIGHT`` costs the gateway, alone.

Under overload most answers are refusals, and what they cost comes out of the requests the
gateway accepted (the overload scenario's goodput). There the refusals are mixed with served
requests, and their cost can only be estimated. Here the gateway refuses nearly everything: a
stack starts with ``MAX_INFLIGHT=1`` and model_a's worker is stopped (``SIGSTOP``), so the one
admitted request holds the only place until its ``?timeout=5`` runs out. Then wrk drives it

1. in the overload scenario's shape: ``--overload-connections`` (768) connections, each pausing
   between requests, together offering ``--refusal-rate`` (4,000) a second: each wake-up of
   the gateway finds one or two requests;
2. busy: 64 connections without pauses, where each wake-up finds many.

Printed per phase: answers a second by status, the gateway's CPU in cores and per answer, and
wrk's. The worker is resumed at the end (and on any error). Then the Python part alone
(``load_testing/refusal_python.py``: the gateway's protocol fed requests in this process, no
system calls), and what that leaves to the kernel and the event loop in each phase. Last, the
same phases against the floor (``load_testing/refusal_floor.py``): a bare protocol on the same
event loop and parser writing the same bytes, in a thread of the bench, and the gateway's cost
per refusal as a multiple of it.
"""

from __future__ import annotations

import argparse
import os
import signal
from collections.abc import Callable
from pathlib import Path

from load_testing import procstat, wrk
from load_testing.bench import brokers
from load_testing.overload import SYNC_TIMEOUT_QUERY
from load_testing.refusal_floor import FloorServer
from load_testing.refusal_python import python_refusals
from load_testing.stack import Stack, environment

__all__ = ["BUSY_CONNECTIONS", "run_refusals"]

BUSY_CONNECTIONS = 64


def run_refusals(args: argparse.Namespace, out: Path) -> None:
    """The refusals scenario (see the module doc)."""
    amqp_url, redis_url = brokers()
    phases = (
        (
            f"{args.overload_connections} pausing",
            args.overload_connections,
            1000 * args.overload_connections / args.refusal_rate,
        ),
        (f"{BUSY_CONNECTIONS} busy", BUSY_CONNECTIONS, 0.0),
    )
    with (
        environment(MAX_INFLIGHT="1"),
        Stack(out / "logs", amqp_url=amqp_url, redis_url=redis_url) as stack,
    ):
        url = f"{stack.api_url}/predict/{stack.model_a}{SYNC_TIMEOUT_QUERY}"
        wrk.run(url, seconds=args.warmup, connections=args.connections)
        api, worker = stack.services["api"].pid, stack.services["model_a"].pid
        print(f"refusals: MAX_INFLIGHT=1, model_a's worker stopped, {args.seconds:g} s a phase")
        print(_HEADER, flush=True)
        os.kill(worker, signal.SIGSTOP)
        try:
            gateway = {
                name: _phase(
                    f"gateway, {name}",
                    url,
                    args.seconds,
                    connections,
                    delay_ms,
                    lambda: procstat.cpu_seconds(api),
                )
                for name, connections, delay_ms in phases
            }
        finally:
            os.kill(worker, signal.SIGCONT)
    with FloorServer() as floor:
        url = f"{floor.url}/predict/model_a{SYNC_TIMEOUT_QUERY}"
        wrk.run(url, seconds=args.warmup, connections=args.connections)
        bare = {
            name: _phase(
                f"bare protocol, {name}",
                url,
                args.seconds,
                connections,
                delay_ms,
                floor.cpu_seconds,
            )
            for name, connections, delay_ms in phases
        }
    python_us = python_refusals().us_per_refusal
    print(
        f"\nthe gateway's Python per refusal, in process with no system calls: {python_us:.1f} us"
    )
    for name, total in gateway.items():
        rest = total - python_us
        print(f"{name}: the kernel and the event loop {rest:.1f} us of {total:.1f} "
              f"({rest / total:.0%}); a bare protocol's whole refusal {bare[name]:.1f} us, "
              f"the gateway's {total / bare[name]:.2f}x that")  # fmt: skip


_HEADER = """
| server, phase | answers/s | statuses | server cores | server us/answer | wrk us/answer |
|---|---|---|---|---|---|"""


def _phase(
    name: str,
    url: str,
    seconds: float,
    connections: int,
    delay_ms: float,
    cpu_seconds: Callable[[], float],
) -> float:
    """One phase: wrk for ``seconds`` at ``url``; prints its row and returns the server's CPU
    per answer in us (``cpu_seconds`` reads the server's CPU so far)."""
    server_before = cpu_seconds()
    wrk_before = procstat.children_cpu_seconds()
    result = wrk.run(url, seconds=seconds, connections=connections, delay_ms=delay_ms,
                     timeout_s=15)  # fmt: skip
    server = cpu_seconds() - server_before
    wrk_used = procstat.children_cpu_seconds() - wrk_before
    answers = max(1, result.requests)
    per_answer = server * 1e6 / answers
    statuses = ", ".join(f"{s}: {n:,}" for s, n in sorted(result.statuses.items()))
    print(f"| {name} | {result.rps:,.0f} | {statuses} | {server / result.duration_s:.2f} | "
          f"{per_answer:.1f} | {wrk_used * 1e6 / answers:.1f} |", flush=True)  # fmt: skip
    return per_answer
