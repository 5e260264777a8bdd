"""The benchmark: Conveyor against a minimal reference system, in the same run.

Usage::

    bazel run //load_testing:bench -- [--scenario main|overload|batching|soak|profile|
        refusals|messages|goals] [--rounds 3] [--seconds 10] [--connections 32] [--warmup 3]

``main`` alternates, round by round, the reference (``load_testing/reference``), Conveyor's
``POST /predict/<model_a>`` (an echo) and ``<model_b>`` (scikit-learn, batching), each driven by
``wrk -t1 -c32`` for ``--seconds``, then prints req/s, p50/p90/p99, errors, CPU ms per request
of each process (gateway, worker, and RabbitMQ and Redis where they run on this machine), and
the Conveyor/reference ratio per round and overall; then c=1 latency.
``overload``, ``batching``, ``soak``, ``profile``, ``refusals`` and ``messages`` are described
in :mod:`load_testing.overload`, :mod:`load_testing.batching`, :mod:`load_testing.soak`,
:mod:`load_testing.profiling`, :mod:`load_testing.refusals` and :mod:`load_testing.messages`;
``goals`` runs main, overload, batching and soak in turn and ends with the verdicts of all of
them. Each scenario ends with one verdict line per goal it measures (:mod:`load_testing.goals`).
Brokers: ``AMQP_URL`` / ``REDIS_URL`` (default: the local ones); everything the run creates
there carries a unique tag and is deleted at the end.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from load_testing import goals, procstat, wrk
from load_testing.reference.process import Reference
from load_testing.report import Row, compare, ratio_lines, table
from load_testing.stack import Stack, StackError
from tools.stack.brokers import DEFAULT_URLS

__all__ = ["Target", "main", "measure"]

GOAL_SCENARIOS = ("main", "overload", "batching", "soak")
"""What ``--scenario goals`` runs: between them they measure every goal of issue 10."""

MODEL_B_BODY = '{"features": [5.1, 3.5, 1.4, 0.2]}'


@dataclass(frozen=True)
class Target:
    """A system under test: its URL, the body to post, and its processes (name -> pid)."""

    name: str
    url: str
    pids: dict[str, int]
    body: str = ""


def measure(target: Target, number: int, seconds: float, connections: int) -> Row:
    """One wrk run against ``target``, with the CPU its processes spent per request."""
    before = {name: procstat.cpu_seconds(pid) for name, pid in target.pids.items()}
    result = wrk.run(target.url, seconds=seconds, connections=connections, body=target.body)
    requests = max(1, result.requests)
    cpu = {
        name: (procstat.cpu_seconds(pid) - before[name]) * 1000 / requests
        for name, pid in target.pids.items()
    }
    return Row(target.name, number, result, cpu)


def conveyor_targets(stack: Stack, label: str = "conveyor") -> tuple[Target, Target]:
    """model_a (echo) and model_b of a running stack."""
    api = stack.services["api"].pid
    return (
        Target(
            f"{label} model_a",
            f"{stack.api_url}/predict/{stack.model_a}",
            {"gateway": api, "worker": stack.services["model_a"].pid},
        ),
        Target(
            f"{label} model_b",
            f"{stack.api_url}/predict/{stack.model_b}",
            {"gateway": api, "worker": stack.services["model_b"].pid},
            MODEL_B_BODY,
        ),
    )


def alternate(
    targets: Sequence[Target], rounds: int, seconds: float, connections: int, warmup: float
) -> list[Row]:
    """Warm every target up, then run ``rounds`` rounds of every target in turn."""
    for target in targets:
        if warmup > 0:
            wrk.run(target.url, seconds=warmup, connections=connections, body=target.body)
    rows = []
    for number in range(1, rounds + 1):
        for target in targets:
            row = measure(target, number, seconds, connections)
            rows.append(row)
            print(table([row]).splitlines()[-1], flush=True)
    return rows


def with_brokers(target: Target, amqp_url: str, redis_url: str) -> Target:
    """``target`` with the broker processes added to what is measured, where they run on this
    machine (the first RabbitMQ node and Redis of the URLs, found by their listening port)."""
    pids = dict(target.pids)
    for name, url, default in (("rabbitmq", amqp_url, 5672), ("redis", redis_url, 6379)):
        pid = local_broker_pid(url, default)
        if pid is not None:
            pids[name] = pid
    return Target(target.name, target.url, pids, target.body)


def local_broker_pid(url: str, default_port: int) -> int | None:
    """The process of the broker at ``url`` (its first node) when it runs on this machine,
    found by its listening port; None elsewhere."""
    parts = urlsplit(url.split(",", 1)[0])
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        return None
    return procstat.listener_pid(parts.port or default_port)


def brokers() -> tuple[str, str]:
    """The brokers' URLs, read now."""
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
        single = [measure(t, 1, min(args.seconds, 5), 1) for t in (ref, model_a)]
        print("\nc=1 latency\n")
        print(table(single))
        print()
        verdicts = goals.throughput(compare(rows, model_a.name, ref.name))
        for verdict in verdicts:
            print(verdict.line())
        return verdicts


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        prog="bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--scenario",
        choices=("main", *GOAL_SCENARIOS[1:], "profile", "refusals", "messages", "goals"),
        default="main",
        help="goals: main, overload, batching and soak in turn, then every goal's verdict",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0, help="per round")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds per system")
    parser.add_argument("--factor", type=float, default=3.0, help="overload: x capacity")
    parser.add_argument("--overload-seconds", type=float, default=30.0)
    parser.add_argument(
        "--overload-connections",
        type=int,
        default=768,
        help="overload: wrk connections; those beyond MAX_INFLIGHT (512) offer the load",
    )
    parser.add_argument(
        "--system-cores",
        type=float,
        help="overload: confine the system (services and brokers) to this many cores with a "
        "cgroup CPU quota, wrk outside it (needs root)",
    )
    parser.add_argument(
        "--refusal-rate", type=float, default=4000.0, help="refusals: 429s a second offered"
    )
    parser.add_argument("--soak-seconds", type=float, default=300.0)
    parser.add_argument("--soak-slice", type=float, default=30.0, help="soak: seconds per slice")
    parser.add_argument(
        "--profiler", choices=("cprofile", "py-spy"), default="cprofile", help="profile: which"
    )
    parser.add_argument(
        "--load", choices=("closed", "overload"), default="closed", help="profile: what load"
    )
    parser.add_argument(
        "--model", choices=("model_a", "model_b"), default="model_a", help="profile: whose worker"
    )
    parser.add_argument("--out", type=Path, help="log directory (default: a new temp dir)")
    args = parser.parse_args(argv)
    try:
        wrk.find_wrk()
    except wrk.WrkError as e:
        print(f"bench: {e}", file=sys.stderr)
        return 2
    base = Path(os.environ.get("BUILD_WORKSPACE_DIRECTORY") or Path.cwd())
    out: Path = args.out or base / "bench-results" / time.strftime("bench-%Y%m%d-%H%M%S")
    print(f"bench {args.scenario} at {_commit(base)}; load average {load_average()}", flush=True)
    try:
        if args.scenario != "goals":
            _scenario(args.scenario, args, out)
        else:
            verdicts = []
            for name in GOAL_SCENARIOS:
                print(f"\n=== {name} ===\n", flush=True)
                verdicts += _scenario(name, args, out / name)
            met = sum(v.met for v in verdicts)
            print(f"\n=== goals: {met} of {len(verdicts)} met ===\n")
            for verdict in verdicts:
                print(verdict.line())
    except ScenarioError as e:
        print(f"bench: {e}", file=sys.stderr)
        return 2
    except (StackError, wrk.WrkError) as e:
        print(f"bench: {e}", file=sys.stderr)
        return 3
    print(f"\nload average after: {load_average()}; logs in {out}")
    return 0


class ScenarioError(Exception):
    """A scenario cannot run here as asked (a missing profiler, no cgroup for a CPU quota)."""


def _scenario(name: str, args: argparse.Namespace, out: Path) -> list[goals.Verdict]:
    """Run one scenario; returns the verdicts on the goals it measures."""
    if name == "main":
        return run_main(args, out)
    if name == "overload":
        from load_testing.cpu_budget import CpuBudgetError
        from load_testing.overload import run_overload

        try:
            return run_overload(args, out)
        except (CpuBudgetError, PermissionError) as e:
            raise ScenarioError(f"--system-cores: {e}") from e
    if name == "batching":
        from load_testing.batching import run_batching

        return run_batching(args, out)
    if name == "soak":
        from load_testing.soak import run_soak

        return run_soak(args, out)
    if name == "refusals":
        from load_testing.refusals import run_refusals

        run_refusals(args, out)
        return []
    if name == "messages":
        from load_testing.messages import run_messages

        run_messages(args, out)
        return []
    from load_testing.profiling import ProfilerMissing, run_profile

    try:
        run_profile(args, out)
    except ProfilerMissing as e:
        raise ScenarioError(str(e)) from e
    return []


def _commit(base: Path) -> str:
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=base,
                              capture_output=True, text=True, timeout=10, check=True)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "no-commit"
    return done.stdout.strip()


if __name__ == "__main__":
    sys.exit(main())
