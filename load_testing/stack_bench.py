"""Start a private stack, run one fixed load scenario, print one comparable line.

Usage::

    python -m load_testing.stack_bench [--users 8] [--run-time 20s] [--out DIR]
    bazel run //load_testing:stack_bench

The brokers are those at ``AMQP_URL`` / ``REDIS_URL`` when they answer, else private ones
(local binaries, else the loaded broker images). Users send requests back to back (no think
time), so the numbers are the stack's capacity on this machine. The same stack is first
driven with the ``baseline`` scenario (``GET /healthz``: the gateway alone, no queue hop) and
then with ``sync`` (predict on model_a and model_b); the line gives both, and their ratio,
which moves far less than raw numbers on a shared, noisy machine::

    stack_bench <commit> sync 8u/20s: <req/s> req/s, p50 <ms> ms, p99 <ms> ms, errors <n>/<n> |
    baseline /healthz <req/s> req/s, p50 <ms> ms | sync/baseline <ratio>

Run it on two commits on the same machine and compare the lines. The exit status is the load
runs' (see :mod:`load_testing.runner`), or 3 when the stack does not come up.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from load_testing import history, runner
from load_testing.stack import Stack, StackError
from tools.stack.brokers import DEFAULT_URLS, BrokerError, ensure

__all__ = ["main"]

SCENARIO = "sync"
BASELINE = "baseline"


def _commit() -> str:
    cwd = os.environ.get("BUILD_WORKSPACE_DIRECTORY") or None
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "no-commit"
    return out.stdout.strip() or "no-commit"


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; prints the one-line result."""
    parser = argparse.ArgumentParser(prog="load_testing.stack_bench", description=__doc__)
    parser.add_argument("--users", type=int, default=8, help="concurrent users (fixed: 8)")
    parser.add_argument("--run-time", default="20s", help="duration (fixed: 20s)")
    parser.add_argument("--out", type=Path, help="output directory (default: timestamped)")
    args = parser.parse_args(argv)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(os.environ.get("BUILD_WORKSPACE_DIRECTORY") or Path.cwd())
    out_dir: Path = args.out or base / "bench-results" / f"stack-{stamp}"
    try:
        brokers = ensure(
            os.environ.get("AMQP_URL", DEFAULT_URLS["rabbitmq"]),
            os.environ.get("REDIS_URL", DEFAULT_URLS["redis"]),
            out_dir / "brokers",
        )
    except BrokerError as e:
        print(f"stack_bench: no brokers: {e}", file=sys.stderr)
        return runner.EXIT_LOCUST
    try:
        with Stack(out_dir / "logs", brokers.amqp_url, brokers.redis_url) as stack:
            rc = 0
            for scenario in (BASELINE, SCENARIO):
                rc = rc or runner.main(
                    [
                        scenario,
                        f"--host={stack.api_url}",
                        f"--registry-url={stack.registry_url}",
                        f"--model-a={stack.model_a}",
                        f"--model-b={stack.model_b}",
                        f"--users={args.users}",
                        f"--spawn-rate={args.users}",
                        f"--run-time={args.run_time}",
                        "--think-time=0",
                        f"--out={out_dir / scenario}",
                        "--quiet",
                    ]
                )
    except StackError as e:
        print(f"stack_bench: the stack did not start: {e}", file=sys.stderr)
        return runner.EXIT_LOCUST
    finally:
        brokers.stop()
    base_stats = out_dir / BASELINE / f"{runner.CSV_PREFIX}_stats.csv"
    stats = out_dir / SCENARIO / f"{runner.CSV_PREFIX}_stats.csv"
    if stats.exists() and base_stats.exists():
        t, b = history.read_totals(stats), history.read_totals(base_stats)
        ratio = t.rps / b.rps if b.rps else 0.0
        print(
            f"stack_bench {_commit()} {SCENARIO} {args.users}u/{args.run_time}: "
            f"{t.rps:.1f} req/s, p50 {t.p50_ms:.0f} ms, p99 {t.p99_ms:.0f} ms, "
            f"errors {t.failures}/{t.requests} | "
            f"{BASELINE} /healthz {b.rps:.1f} req/s, p50 {b.p50_ms:.0f} ms | "
            f"{SCENARIO}/{BASELINE} {ratio:.2f}"
        )
    return rc


if __name__ == "__main__":
    sys.exit(main())
