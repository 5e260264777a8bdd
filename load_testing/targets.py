"""What the benchmark's scenarios share: the systems they drive and how one round is measured.

A :class:`Target` is one URL to post to and the processes that serve it; :func:`measure` drives
it with one wrk run and charges each process the CPU it spent per request; :func:`alternate`
warms every target up, then measures them in turn, round after round, so that every system sees
the machine's drift alike. Scenarios import this module, never ``load_testing.bench``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from load_testing import procstat, wrk
from load_testing.report import Row, table
from load_testing.stack import Stack
from tools.stack.brokers import DEFAULT_URLS

__all__ = [
    "MODEL_B_BODY",
    "Drive",
    "Target",
    "alternate",
    "brokers",
    "conveyor_targets",
    "load_average",
    "local_broker_pid",
    "measure",
    "with_brokers",
]

MODEL_B_BODY = '{"features": [5.1, 3.5, 1.4, 0.2]}'


@dataclass(frozen=True)
class Target:
    """A system under test: its URL, the body to post, and its processes.

    ``pids`` are read one process each; ``groups`` (name -> the leader's pid) are read as whole
    process groups, so a service that runs several processes (a supervisor and its children)
    is charged for all of them.
    """

    name: str
    url: str
    pids: Mapping[str, int]
    body: str = ""
    groups: Mapping[str, int] = field(default_factory=dict)

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds used so far by each of its process groups, then each of its processes,
        by name."""
        used = {name: procstat.group_cpu_seconds(pid) for name, pid in self.groups.items()}
        used.update({name: procstat.cpu_seconds(pid) for name, pid in self.pids.items()})
        return used


Drive = Callable[[float, int], wrk.WrkResult]
"""A load generator's run: (seconds, connections) -> what it measured."""


def measure(
    target: Target, number: int, seconds: float, connections: int, drive: Drive | None = None
) -> Row:
    """One run against ``target`` (wrk posting its body, unless ``drive`` runs another load),
    with the CPU its processes spent per request."""
    before = target.cpu_seconds()
    if drive is not None:
        result = drive(seconds, connections)
    else:
        result = wrk.run(target.url, seconds=seconds, connections=connections, body=target.body)
    after = target.cpu_seconds()
    requests = max(1, result.requests)
    cpu = {name: (after[name] - before[name]) * 1000 / requests for name in before}
    return Row(target.name, number, result, cpu)


def conveyor_targets(stack: Stack, label: str = "conveyor") -> tuple[Target, Target]:
    """model_a (echo) and model_b of a running stack; each service read as its process group."""
    api = stack.services["api"].pid
    return (
        Target(
            f"{label} model_a",
            f"{stack.api_url}/predict/{stack.model_a}",
            {},
            groups={"gateway": api, "worker": stack.services["model_a"].pid},
        ),
        Target(
            f"{label} model_b",
            f"{stack.api_url}/predict/{stack.model_b}",
            {},
            MODEL_B_BODY,
            groups={"gateway": api, "worker": stack.services["model_b"].pid},
        ),
    )


def alternate(
    targets: Sequence[Target],
    rounds: int,
    seconds: float,
    connections: int,
    warmup: float,
    drives: Mapping[str, Drive] | None = None,
    line: Callable[[Row], str] | None = None,
) -> list[Row]:
    """Warm every target up, then run ``rounds`` rounds of every target in turn, printing each
    row as it is measured (``line``: how; by default its row of ``table``).

    ``drives`` maps a target's name to the load that drives it (``measure``); a target without
    one is driven by wrk posting its body."""
    drives = drives or {}

    def drive(target: Target) -> Drive:
        return drives.get(target.name) or (
            lambda secs, conns: wrk.run(
                target.url, seconds=secs, connections=conns, body=target.body
            )
        )

    for target in targets:
        if warmup > 0:
            drive(target)(warmup, connections)
    rows = []
    for number in range(1, rounds + 1):
        for target in targets:
            row = measure(target, number, seconds, connections, drive(target))
            rows.append(row)
            print(line(row) if line else table([row]).splitlines()[-1], flush=True)
    return rows


def with_brokers(target: Target, amqp_url: str, redis_url: str) -> Target:
    """``target`` with the broker processes added to what is measured, where they run on this
    machine (the first RabbitMQ node and Redis of the URLs, found by their listening port)."""
    pids = dict(target.pids)
    for name, url, default in (("rabbitmq", amqp_url, 5672), ("redis", redis_url, 6379)):
        pid = local_broker_pid(url, default)
        if pid is not None:
            pids[name] = pid
    return Target(target.name, target.url, pids, target.body, target.groups)


def local_broker_pid(url: str, default_port: int) -> int | None:
    """The process of the broker at ``url`` (its first node) when it runs on this machine,
    found by its listening port; None elsewhere."""
    parts = urlsplit(url.split(",", 1)[0])
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        return None
    return procstat.listener_pid(parts.port or default_port)


def brokers() -> tuple[str, str]:
    """The brokers' URLs (``AMQP_URL``, ``REDIS_URL``, else the local defaults), read now."""
    return (
        os.environ.get("AMQP_URL", DEFAULT_URLS["rabbitmq"]),
        os.environ.get("REDIS_URL", DEFAULT_URLS["redis"]),
    )


def load_average() -> str:
    """The machine's load average (the numbers are only comparable within one run)."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"
