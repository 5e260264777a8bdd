"""The ``overload`` scenario: Conveyor offered about three times what it can serve.

1. Capacity: model_a driven closed-loop for ``--seconds`` at ``--connections`` (32) and again
   at half the gateway's ``MAX_INFLIGHT``; the better of the two counts. A few dozen clients can
   leave the system short of what it serves with hundreds of requests in flight, and goodput
   measured against that would flatter it.
2. Overload: ``wrk`` with many connections (``--overload-connections``, default 768), each
   pausing between requests so that the connections not stuck in accepted requests (at most
   the gateway's ``MAX_INFLIGHT``) offer ``--factor`` x capacity; sync predict with
   ``?timeout=5`` for ``--overload-seconds`` (30). wrk is closed-loop, so this is open-loop
   only as long as answers come fast (429s do); the offered rate it reached is printed.
   Each pause is a timer in wrk's event loop, which scans all of them on every turn, so the
   default keeps the free connections few: wrk's own CPU comes out of the system's.
   ``MAX_INFLIGHT`` is the gateway's default unless the bench's environment sets it (as
   ``MAX_INFLIGHT=128 bazel run //load_testing:bench -- --scenario overload``); steps 1 and 2
   follow it.
3. A probe sends one request every 50 ms on its own (open loop, independent of wrk) and
   measures the latency of successes, which wrk cannot separate from the fast refusals.

``--system-cores N`` runs 1 and 2 with the system (services and local brokers) confined to N
cores by a cgroup CPU quota and wrk outside it (``load_testing/cpu_budget.py``): the nearest
this machine gets to clients on other machines.

Printed: shares of 200/429/503/504 and other statuses, goodput against capacity, the probe's
p99 of successes, answers that were not JSON (must be 0), the gateway's RSS before, right
after and 10 s after, how long the model's queues took to drain, and the CPU that the gateway,
the worker and wrk itself used (all on the same cores), with how busy the whole machine was.
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
from pathlib import Path

import aio_pika
import httpx
from aiormq.exceptions import ChannelNotFoundEntity

from api.config import Settings
from conveyor.protocol import model_queues
from load_testing import goals, procstat, wrk
from load_testing.cpu_budget import CpuBudget
from load_testing.report import Row, table
from load_testing.stack import Stack
from load_testing.targets import Target, brokers, conveyor_targets, measure, with_brokers

__all__ = ["Probe", "measure_capacity", "offer_overload", "run_overload"]


GATEWAY_MAX_INFLIGHT = Settings().max_inflight
"""The gateway's ``MAX_INFLIGHT`` as the stacks started here get it: read from this environment
(which a stack passes on) by the gateway's own settings."""
DEEP_CONNECTIONS = GATEWAY_MAX_INFLIGHT // 2
"""The second capacity run: many in flight, still below both admission bounds."""
SYNC_TIMEOUT_S = 5
SYNC_TIMEOUT_QUERY = f"?timeout={SYNC_TIMEOUT_S}"
PROBE_INTERVAL_S = 0.05


class Probe:
    """Open-loop sampler: one request per interval, in its own thread and event loop."""

    def __init__(self, url: str, seconds: float) -> None:
        self.url = url
        self.seconds = seconds
        self.latencies: dict[int, list[float]] = {}
        self.non_json = 0
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def start(self) -> None:
        """Start sampling."""
        self._thread.start()

    def join(self) -> None:
        """Wait for every sample to finish."""
        self._thread.join()

    async def _one(self, client: httpx.AsyncClient) -> None:
        start = time.monotonic()
        try:
            response = await client.post(self.url, content=b'{"data": "example"}',
                                         headers={"Content-Type": "application/json"})  # fmt: skip
        except httpx.HTTPError:
            self.latencies.setdefault(0, []).append(time.monotonic() - start)
            return
        elapsed = time.monotonic() - start
        self.latencies.setdefault(response.status_code, []).append(elapsed)
        if "json" not in response.headers.get("content-type", ""):
            self.non_json += 1

    async def _run(self) -> None:
        limits = httpx.Limits(max_connections=1000, max_keepalive_connections=100)
        async with httpx.AsyncClient(timeout=30, limits=limits) as client:
            pending = []
            end = time.monotonic() + self.seconds
            while time.monotonic() < end:
                pending.append(asyncio.create_task(self._one(client)))
                await asyncio.sleep(PROBE_INTERVAL_S)
            await asyncio.gather(*pending)

    def p99_ms(self, status: int = 200) -> float:
        """99th percentile latency of answers with ``status`` (0 when there were none)."""
        values = sorted(self.latencies.get(status, []))
        return values[min(len(values) - 1, int(len(values) * 0.99))] * 1000 if values else 0.0


async def _queued(amqp_url: str, queues: tuple[str, ...]) -> int:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        total = 0
        for name in queues:
            channel = await connection.channel()
            try:
                declared = await channel.declare_queue(name, passive=True)
                total += declared.declaration_result.message_count or 0
            except ChannelNotFoundEntity:
                continue
        return total


def _drain_seconds(amqp_url: str, queues: tuple[str, ...], limit: float = 60.0) -> float:
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if asyncio.run(_queued(amqp_url, queues)) == 0:
            return time.monotonic() - start
        time.sleep(0.5)
    return float("inf")


def run_overload(args: argparse.Namespace, out: Path) -> list[goals.Verdict]:
    """The overload scenario (see the module doc); returns goal 2's verdicts."""
    amqp_url, redis_url = brokers()
    with Stack(out / "logs", amqp_url=amqp_url, redis_url=redis_url) as stack:
        model_a, _ = conveyor_targets(stack)
        measured = with_brokers(model_a, amqp_url, redis_url)
        if not args.system_cores:
            return _overload(args, stack, measured, amqp_url, None)
        services = (procstat.group_pids(s.pid) for s in stack.services.values())
        system = {*measured.pids.values(), *(pid for group in services for pid in group)}
        with CpuBudget(args.system_cores, system) as budget:
            print(f"system (gateway, registry, workers, rabbitmq, redis: {len(system)} "
                  f"processes) confined to {args.system_cores:g} cores; wrk and the bench "
                  f"outside")  # fmt: skip
            return _overload(args, stack, measured, amqp_url, budget)


def measure_capacity(target: Target, args: argparse.Namespace) -> tuple[float, Row, list[Row]]:
    """Step 1 of the module doc: closed loops at ``--connections`` and at ``DEEP_CONNECTIONS``.
    Returns the better one's 200s a second, its row, and both rows."""
    rows = [
        measure(target, n, args.seconds, c)
        for n, c in enumerate((args.connections, DEEP_CONNECTIONS), 1)
    ]
    best = max(rows, key=lambda row: _served_per_second(row.result))
    return _served_per_second(best.result), best, rows


def _served_per_second(result: wrk.WrkResult) -> float:
    """200s a second: a closed loop's capacity counts only what it served."""
    return result.statuses.get(200, 0) / result.duration_s


def offer_overload(
    url: str, args: argparse.Namespace, capacity: float, seconds: float
) -> tuple[wrk.WrkResult, float]:
    """Step 2 of the module doc: wrk offering ``--factor`` x ``capacity`` to ``url`` (sync
    predict with ``?timeout=5``) for ``seconds``. Returns wrk's result and the mean pause per
    connection, in ms."""
    free = max(1, args.overload_connections - GATEWAY_MAX_INFLIGHT)
    delay_ms = 1000 * free / (args.factor * capacity)
    result = wrk.run(f"{url}{SYNC_TIMEOUT_QUERY}", seconds=seconds,
                     connections=args.overload_connections, delay_ms=delay_ms,
                     timeout_s=15)  # fmt: skip
    return result, delay_ms


def _overload(
    args: argparse.Namespace,
    stack: Stack,
    model_a: Target,
    amqp_url: str,
    budget: CpuBudget | None,
) -> list[goals.Verdict]:
    """Capacity, then the overload, printed (see the module doc); returns the verdicts.
    ``model_a`` carries every process whose CPU is reported (the brokers' too)."""
    api = model_a.groups["gateway"]

    def held_back() -> float:
        return budget.throttled_seconds() if budget else 0.0

    wrk.run(model_a.url, seconds=args.warmup, connections=args.connections)
    capacity_held = -held_back()
    capacity, capacity_row, rows = measure_capacity(model_a, args)
    capacity_held += held_back()
    print(table(rows))
    rss_before = procstat.group_rss_mb(api)
    probe = Probe(f"{model_a.url}{SYNC_TIMEOUT_QUERY}", args.overload_seconds)
    cpu_before = model_a.cpu_seconds()
    wrk_before = procstat.children_cpu_seconds()
    machine_before = procstat.machine_cpu()
    probe.start()
    overload_held = -held_back()
    result, delay_ms = offer_overload(model_a.url, args, capacity, args.overload_seconds)
    overload_held += held_back()
    machine_after = procstat.machine_cpu()
    cpu = {name: used - cpu_before[name] for name, used in model_a.cpu_seconds().items()}
    cpu["wrk"] = procstat.children_cpu_seconds() - wrk_before
    probe.join()
    rss_after = procstat.group_rss_mb(api)
    drained = _drain_seconds(amqp_url, model_queues(stack.model_a, "1"))
    time.sleep(10)
    rss_settled = procstat.group_rss_mb(api)
    shares = ", ".join(
        f"{status}: {result.share(status):.1%}" for status in sorted(result.statuses)
    )
    goodput = result.statuses.get(200, 0) / result.duration_s
    successes = len(probe.latencies.get(200, []))
    print(f"\noverload: wrk -c{args.overload_connections} pausing {delay_ms:.0f} ms, "
          f"{args.overload_seconds:g} s, ?timeout=5")  # fmt: skip
    levels = zip((args.connections, DEEP_CONNECTIONS), rows, strict=True)
    rates = ", ".join(f"c={c}: {_served_per_second(row.result):,.0f}" for c, row in levels)
    print(f"capacity (closed loop, the better of {rates}): {capacity:,.0f} req/s")
    print(f"offered: {result.rps:,.0f} req/s ({result.rps / capacity:.1f}x capacity)")
    print(f"answers: {result.requests:,} ({shares}); socket errors {result.socket_errors}, "
          f"wrk timeouts {result.timeouts}")  # fmt: skip
    print(f"goodput: {goodput:,.0f} req/s = {goodput / capacity:.0%} of capacity")
    print(f"latency of all answers: p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms, "
          f"max {result.max_ms:.0f} ms")  # fmt: skip
    probe_statuses = {s: len(v) for s, v in sorted(probe.latencies.items())}
    print(f"probe (1 per {PROBE_INTERVAL_S * 1000:.0f} ms): {probe_statuses}; p99 of "
          f"successes {probe.p99_ms():.0f} ms over {successes}")  # fmt: skip
    print(f"non-JSON answers: {result.non_json} (wrk) + {probe.non_json} (probe)")
    print(f"gateway RSS: {rss_before:.0f} MB before, {rss_after:.0f} MB after, "
          f"{rss_settled:.0f} MB 10 s later")  # fmt: skip
    print(f"queues drained {drained:.1f} s after the load stopped")
    busy = machine_after[0] - machine_before[0]
    total = machine_after[1] - machine_before[1]
    cores = ", ".join(f"{name} {used / result.duration_s:.2f}" for name, used in cpu.items())
    print(f"CPU during the overload, in cores: {cores}; the machine was "
          f"{busy / total if total else 0:.0%} busy")  # fmt: skip
    per_answer = cpu["gateway"] * 1e6 / max(1, result.requests)
    served = result.statuses.get(200, 0)
    refused = max(1, result.requests - served)
    refusal_us = (cpu["gateway"] - served * capacity_row.cpu_ms["gateway"] / 1000) * 1e6 / refused
    print(f"gateway CPU per answer (200s and 429s together): {per_answer:.0f} us; per "
          f"refusal, taking a 200 at its closed-loop cost: {refusal_us:.0f} us")  # fmt: skip
    if budget is not None:
        system = sum(used for name, used in cpu.items() if name != "wrk") / result.duration_s
        served_us = budget.cores * 1e6 / capacity if capacity > 0 else 0.0
        factor = result.rps / capacity if capacity > 0 else 0.0
        expected = goals.expected_goodput(served_us, refusal_us, factor)
        ceiling = goals.refusal_ceiling_us(served_us, factor)
        print(f"goodput worked out: a served request costs {served_us:.0f} us of the "
              f"{budget.cores:g} cores at capacity, a refusal {refusal_us:.0f} us of the "
              f"gateway's; at {factor:.1f}x that gives {expected:.0%} if served requests cost "
              f"no more beside the refusals; 90 % needs a refusal of at most {ceiling:.1f} us "
              f"({ceiling / served_us if served_us else 0:.1%} of a served request)")  # fmt: skip
        print(f"system CPU budget {budget.cores:g} cores: the measured processes used "
              f"{system:.2f} during the overload; the quota held the system back "
              f"{capacity_held:.1f} s of the capacity runs' {2 * args.seconds:g} s "
              f"and {overload_held:.1f} s of the overload's "
              f"{args.overload_seconds:g} s")  # fmt: skip
    statuses = dict(result.statuses)
    for status, latencies in probe.latencies.items():
        statuses[status] = statuses.get(status, 0) + len(latencies)
    print()
    verdicts = goals.overload(
        capacity=capacity,
        goodput=goodput,
        probe_p99_ms=probe.p99_ms(),
        timeout_ms=SYNC_TIMEOUT_S * 1000,
        statuses=statuses,
        non_json=result.non_json + probe.non_json,
        rss_before_mb=rss_before,
        rss_settled_mb=rss_settled,
        drained_s=drained,
    )
    for verdict in verdicts:
        print(verdict.line())
    return verdicts
