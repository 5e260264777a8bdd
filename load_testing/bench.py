"""The benchmark: Conveyor measured against a baseline in the same run, driven by wrk.

Usage::

    bazel run //load_testing:bench -- [--scenario main|overload|batching|soak|processes|
        profile|tensors|streaming|tracing|goals] [--rounds 3] [--seconds 10]
        [--connections 32] [--warmup 3]

Each scenario is a module of its own, listed in :mod:`load_testing.bench_scenarios` (its
module doc says what it runs and prints); ``goals`` runs main, overload, batching and soak in
turn and ends with all their verdicts (:mod:`load_testing.goals`). Every run prints the commit
and the machine's load average before and after. Brokers: ``AMQP_URL`` / ``REDIS_URL``
(default: the local ones); everything a run creates there carries a unique tag and is deleted
at the end. Exit status: 0 done, 2 cannot run here as asked, 3 a stack or wrk failed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from load_testing import goals, wrk
from load_testing.bench_scenarios import GOAL_SCENARIOS, MOVED, SCENARIOS, ScenarioError
from load_testing.stack import StackError
from load_testing.targets import load_average

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        prog="bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--scenario",
        choices=(*SCENARIOS, "goals", *MOVED),
        default="main",
        help="; ".join(
            [f"{s.name}: {s.summary}" for s in SCENARIOS.values()]
            + [f"goals: {', '.join(GOAL_SCENARIOS)} in turn, then every goal's verdict"]
        ),
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
    parser.add_argument(
        "--chunk-delay-ms", type=float, default=2.0, help="streaming: model_c's delay a word"
    )
    parser.add_argument(
        "--first-requests", type=int, default=300, help="streaming: c=1 streams, all rounds"
    )
    parser.add_argument("--streams", type=int, default=64, help="streaming: streams at once")
    parser.add_argument("--pieces", type=int, default=200, help="streaming: words a stream")
    parser.add_argument("--idle-streams", type=int, default=1000, help="streaming: held open")
    parser.add_argument(
        "--model-cores", type=int, default=0, help="onnx: cores of the model's own (0: shared)"
    )
    parser.add_argument("--out", type=Path, help="log directory (default: a new temp dir)")
    args = parser.parse_args(argv)
    if args.scenario in MOVED:
        print(f"bench: --scenario {args.scenario} left the benchmark: {MOVED[args.scenario]}",
              file=sys.stderr)  # fmt: skip
        return 2
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
            SCENARIOS[args.scenario].run(args, out)
        else:
            verdicts: list[goals.Verdict] = []
            for name in GOAL_SCENARIOS:
                print(f"\n=== {name} ===\n", flush=True)
                verdicts += SCENARIOS[name].run(args, out / name)
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


def _commit(base: Path) -> str:
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=base,
                              capture_output=True, text=True, timeout=10, check=True)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "no-commit"
    return done.stdout.strip()


if __name__ == "__main__":
    sys.exit(main())
