"""The ``tracing`` scenario: what OpenTelemetry tracing costs the synchronous predict path.

Three stacks run side by side on the same brokers, alike but for the ``OTEL_*`` variables their
services get (``conveyor.tracing``):

- ``tracing unset``: no endpoint, so tracing is off (one check per request and task);
- ``not sampling``: an endpoint and ``OTEL_TRACES_SAMPLER=parentbased_traceidratio`` at ``0``:
  every request decides not to sample, nothing is exported, no task carries a context;
- ``sampling``: an endpoint and ``always_on``: every request's spans (gateway and worker) are
  exported over OTLP/HTTP to a real receiver (traceview, started here on a free port).

After a warm-up, rounds alternate model_a's sync predict (the echo: the path where tracing's
share is largest) on each stack, ``wrk -t1 -c<--connections>`` for ``--seconds``; gateway and
worker are each read as their process group for CPU per request.

Printed: each round's row, each stack's req/s and CPU per request (gateway + worker), the ratios
of each traced stack to the unset one, and the two goals: not sampling at most 3 % off the unset
throughput (ratio at least 0.97), sampling at most 15 % off (at least 0.85).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Final

from load_testing import goals
from load_testing.report import Row, compare, ratio_lines, table
from load_testing.stack import Stack, environment
from load_testing.targets import alternate, brokers, conveyor_targets
from tools.stack.ports import free_port
from tools.stack.probes import http_ok
from tools.stack.process import Service
from tools.stack.waiting import wait_until

__all__ = ["GOALS", "cpu_per_request", "modes", "receiver", "report_lines", "run_tracing"]

UNSET: Final = "tracing unset"
NOT_SAMPLING: Final = "not sampling"
SAMPLING: Final = "sampling"

GOALS: Final[Mapping[str, float]] = {NOT_SAMPLING: 0.97, SAMPLING: 0.85}
"""The least throughput ratio to the unset stack each traced stack must reach."""


def modes(endpoint: str) -> dict[str, dict[str, str]]:
    """Each stack's ``OTEL_*`` variables, with spans sent to ``endpoint``."""
    return {
        UNSET: {},
        NOT_SAMPLING: {
            "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0",
        },
        SAMPLING: {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_TRACES_SAMPLER": "always_on"},
    }


@contextlib.contextmanager
def receiver(log_dir: Path, timeout: float = 60.0) -> Iterator[str]:
    """traceview (``python -m traceview``) on a free loopback port; yields its OTLP/HTTP base
    URL (``OTEL_EXPORTER_OTLP_ENDPOINT``) and stops it on leaving."""
    port = free_port()
    service = Service(
        "traceview",
        {"TRACEVIEW_HOST": "127.0.0.1", "TRACEVIEW_PORT": str(port), "TRACEVIEW_GRPC_PORT": "0"},
        log_dir,
        "traceview",
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            if not service.alive():
                raise RuntimeError(f"traceview exited; see {log_dir / 'traceview.log'}")
            return http_ok(f"{endpoint}/healthz")

        wait_until(up, timeout, what="traceview")
        yield endpoint
    finally:
        service.stop()


def run_tracing(args: argparse.Namespace, out: Path) -> list[goals.Verdict]:
    """The tracing scenario (see the module doc); returns the two goals' verdicts."""
    amqp_url, redis_url = brokers()
    with contextlib.ExitStack() as stacks:
        endpoint = stacks.enter_context(receiver(out / "logs"))
        targets = []
        for label, env in modes(endpoint).items():
            with environment(**env):
                stack = Stack(out / "logs" / label, amqp_url=amqp_url, redis_url=redis_url)
                stacks.enter_context(stack)
            model_a, _ = conveyor_targets(stack)
            targets.append(dataclasses.replace(model_a, name=label))
        rows = alternate(targets, args.rounds, args.seconds, args.connections, args.warmup)
    print(f"\nwrk -t1 -c{args.connections}, {args.seconds:g} s per round, model_a sync\n")
    print(table(rows))
    print()
    lines, verdicts = report_lines(rows)
    for line in lines:
        print(line)
    return verdicts


def cpu_per_request(rows: Sequence[Row], system: str) -> float | None:
    """CPU ms per request of ``system``'s processes together over its rounds (weighted by their
    requests); None when it did not run."""
    own = [row for row in rows if row.system == system]
    requests = sum(row.result.requests for row in own)
    if not requests:
        return None
    return sum(sum(row.cpu_ms.values()) * row.result.requests for row in own) / requests


def report_lines(rows: Sequence[Row]) -> tuple[list[str], list[goals.Verdict]]:
    """The closing lines (each stack's CPU per request, the ratios to the unset stack) and the
    goals' verdicts."""
    lines = []
    unset_cpu = cpu_per_request(rows, UNSET)
    for system in (UNSET, NOT_SAMPLING, SAMPLING):
        cpu = cpu_per_request(rows, system)
        shown = "not measured" if cpu is None else f"{cpu:.2f} CPU ms/request"
        if cpu is not None and unset_cpu and system != UNSET:
            shown += f" ({cpu / unset_cpu:.2f}x the unset stack's)"
        lines.append(f"{system}: {shown}")
    verdicts = []
    for system, bound in GOALS.items():
        lines += ratio_lines(rows, system, UNSET)
        comparison = compare(rows, system, UNSET)
        overall = comparison.overall if comparison is not None else None
        measured = "not measured" if overall is None else f"{overall:.2f}x the unset req/s"
        verdicts.append(
            goals.Verdict(
                f"tracing {system}",
                measured,
                f">= {bound:.2f}x ({(1 - bound) * 100:.0f} % off at most)",
                overall is not None and overall >= bound,
            )
        )
    lines += [verdict.line() for verdict in verdicts]
    return lines, verdicts
