"""Each scenario, briefly, against a real stack started here; any failed request fails it.

The stack is real processes (registry, gateway, model_a, model_b) over the real RabbitMQ and
Redis; model names and registry keys are unique to this test, and removed afterwards.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from load_testing.stack import Stack

RUN_BOUND_S = 240


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with Stack(tmp_path_factory.mktemp("stack-logs")) as running:
        yield running


def _run(stack: Stack, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable, "-m", "load_testing", *args,
        f"--host={stack.api_url}",
        f"--registry-url={stack.registry_url}",
        f"--model-a={stack.model_a}",
        f"--model-b={stack.model_b}",
        f"--out={out}",
        "--max-failure-ratio=0",
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=RUN_BOUND_S)


def _aggregated(out: Path) -> dict[str, str]:
    with (out / "locust_stats.csv").open(newline="") as f:
        return next(r for r in csv.DictReader(f) if r["Name"] == "Aggregated")


@pytest.mark.parametrize("scenario", ["baseline", "model_a", "model_b", "async", "sync", "mixed"])
def test_scenario_runs_without_errors(stack: Stack, tmp_path: Path, scenario: str) -> None:
    done = _run(stack, tmp_path, scenario, "--users=3", "--spawn-rate=3", "--run-time=5s")
    assert done.returncode == 0, done.stdout + done.stderr
    totals = _aggregated(tmp_path)
    assert int(totals["Request Count"]) > 0
    assert int(totals["Failure Count"]) == 0
    for name in ("report.html", "history.png", "locust_stats_history.csv"):
        assert (tmp_path / name).stat().st_size > 0


def test_async_scenario_polls_tasks_to_completion(stack: Stack, tmp_path: Path) -> None:
    done = _run(stack, tmp_path, "async", "--users=2", "--spawn-rate=2", "--run-time=5s")
    assert done.returncode == 0, done.stdout + done.stderr
    with (tmp_path / "locust_stats.csv").open(newline="") as f:
        rows = {r["Name"]: r for r in csv.DictReader(f)}
    completed = [r for r in rows.values() if r["Type"] == "ASYNC"]
    assert completed, rows.keys()
    assert all(int(r["Request Count"]) > 0 and int(r["Failure Count"]) == 0 for r in completed)
    assert int(rows["/tasks/[id]"]["Request Count"]) > 0


def test_step_scenario_reports_each_step(stack: Stack, tmp_path: Path) -> None:
    done = _run(stack, tmp_path, "step", "--step-users=2", "--step-time=5s", "--step-count=2")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "step    2 users" in done.stdout
    assert "step    4 users" in done.stdout
    assert "saturation" in done.stdout
    assert int(_aggregated(tmp_path)["Failure Count"]) == 0


def test_v2_scenario_runs_clean(stack: Stack, tmp_path: Path) -> None:
    """The gateway serves /v2, so the v2_infer users run (no skip) and every infer succeeds."""
    done = _run(stack, tmp_path, "v2_infer", "--users=2", "--spawn-rate=2", "--run-time=5s")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "skipped" not in done.stdout, done.stdout
    stats = _aggregated(tmp_path)
    assert int(stats["Request Count"]) > 0, stats
    assert int(stats["Failure Count"]) == 0, stats
