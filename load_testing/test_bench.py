"""The benchmark's command line and its layering: the bench reads a registry of scenarios,
no scenario imports the bench, and the benchmark imports no experiment."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import load_testing
from load_testing import bench
from load_testing.bench_scenarios import GOAL_SCENARIOS, MOVED, SCENARIOS

PACKAGE = Path(load_testing.__file__).parent


def _imports(path: Path) -> set[str]:
    """The modules ``path`` imports (``from a import b`` counts as ``a`` and ``a.b``)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _modules() -> list[Path]:
    modules = sorted(p for p in PACKAGE.glob("*.py") if not p.name.startswith("test_"))
    assert PACKAGE / "targets.py" in modules, "the package's modules are not in the runfiles"
    return modules


def test_no_module_imports_the_bench() -> None:
    importers = [p.name for p in _modules() if "load_testing.bench" in _imports(p)]
    assert importers == []


def test_the_benchmark_imports_no_experiment() -> None:
    importers = [
        p.name
        for p in _modules()
        if any(name.startswith("load_testing.experiments") for name in _imports(p))
    ]
    assert importers == []


def test_the_documented_scenarios_are_registered() -> None:
    documented = {"main", "overload", "batching", "soak", "processes", "profile", "tensors"}
    assert documented <= set(SCENARIOS)
    assert set(GOAL_SCENARIOS) <= set(SCENARIOS)
    assert not set(MOVED) & set(SCENARIOS)


@pytest.mark.parametrize("name", sorted(MOVED))
def test_a_scenario_that_left_says_where_it_went(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bench.main(["--scenario", name]) == 2
    assert MOVED[name] in capsys.readouterr().err
