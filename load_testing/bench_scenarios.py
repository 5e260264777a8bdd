"""The benchmark's scenarios by name: what ``bench --scenario`` can run, as a registry.

Each entry names a scenario module's ``run`` function, which takes the parsed command line and
a log directory and returns its goal verdicts. ``bench.py`` reads this registry; the scenario
modules import only shared helpers (``targets``, ``report``, ``stack``, ...), never the bench
or each other's entry points, so nothing here imports in a cycle.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from load_testing import goals
from load_testing.batching import run_batching
from load_testing.cpu_budget import CpuBudgetError
from load_testing.h2load import H2loadError
from load_testing.main_scenario import run_main
from load_testing.onnx_scenario import run_onnx
from load_testing.overload import run_overload
from load_testing.processes import run_processes
from load_testing.profiling import ProfilerMissing, run_profile
from load_testing.soak import run_soak
from load_testing.streaming import run_streaming
from load_testing.tensors import run_tensors
from load_testing.tracing_cost import run_tracing

__all__ = ["GOAL_SCENARIOS", "MOVED", "SCENARIOS", "BenchScenario", "ScenarioError"]

Run = Callable[[argparse.Namespace, Path], list[goals.Verdict]]


class ScenarioError(Exception):
    """A scenario cannot run here as asked (a missing profiler or h2load, no cgroup for a CPU
    quota)."""


@dataclass(frozen=True)
class BenchScenario:
    """A scenario: its ``--scenario`` name, one line on what it prints, and how to run it."""

    name: str
    summary: str
    run: Run


def _overload(args: argparse.Namespace, out: Path) -> list[goals.Verdict]:
    try:
        return run_overload(args, out)
    except (CpuBudgetError, PermissionError) as e:
        raise ScenarioError(f"--system-cores: {e}") from e


def _profile(args: argparse.Namespace, out: Path) -> list[goals.Verdict]:
    try:
        run_profile(args, out)
    except ProfilerMissing as e:
        raise ScenarioError(str(e)) from e
    return []


def _onnx(args: argparse.Namespace, out: Path) -> list[goals.Verdict]:
    try:
        return run_onnx(args, out)
    except H2loadError as e:
        raise ScenarioError(str(e)) from e


def _tensors(args: argparse.Namespace, out: Path) -> list[goals.Verdict]:
    try:
        return run_tensors(args, out)
    except H2loadError as e:
        raise ScenarioError(str(e)) from e


SCENARIOS: Final[dict[str, BenchScenario]] = {
    s.name: s
    for s in (
        BenchScenario("main", "Conveyor against the reference, then c=1 (goal 1)", run_main),
        BenchScenario("overload", "about 3x capacity, sync ?timeout=5 (goal 2)", _overload),
        BenchScenario("batching", "model_b batched, unbatched, and model_a (goal 3)", run_batching),
        BenchScenario("soak", "model_a at full load for minutes, with RSS (goal 4)", run_soak),
        BenchScenario("processes", "main's load on 1 and 2 gateway processes", run_processes),
        BenchScenario("profile", "gateway and a worker under a profiler, under load", _profile),
        BenchScenario(
            "tensors",
            "a 147 KB image by REST and gRPC beside the reference; gRPC vs REST",
            _tensors,
        ),
        BenchScenario(
            "streaming",
            "model_c's streams against its generator answering SSE in one process",
            run_streaming,
        ),
        BenchScenario(
            "tracing",
            "sync predict with tracing unset, configured but not sampling, and sampling all",
            run_tracing,
        ),
        BenchScenario(
            "onnx",
            "the ONNX image model served (REST, gRPC, the wheel's worker) against in-process",
            _onnx,
        ),
    )
}

GOAL_SCENARIOS: Final = ("main", "overload", "batching", "soak")
"""What ``--scenario goals`` runs in turn: between them they measure every goal."""

MOVED: Final[dict[str, str]] = {
    "refusals": "bazel run //load_testing/experiments:refusals",
    "messages": "removed; its answer is in docs/performance.md's decision table "
    "(git log --oneline -- load_testing/messages.py finds the code)",
}
"""Scenarios that answered their question and left the benchmark, and where they went."""
