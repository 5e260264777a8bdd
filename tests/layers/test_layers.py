"""Dependencies point one way: conveyor/ <- api/, registry/, worker_base/ <- models/.

Reads the sources of each layer (from the test's runfiles) and checks what they import, so a
wrong import fails here with the file and line, not later as a confusing build or image problem.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

FORBIDDEN: dict[str, set[str]] = {
    "conveyor": {"api", "registry", "worker_base", "models", "tools", "tests", "load_testing"},
    "api": {"registry", "worker_base", "models", "tools", "tests", "load_testing"},
    "registry": {"api", "worker_base", "models", "tools", "tests", "load_testing", "aio_pika"},
    "worker_base": {"api", "registry", "models", "tools", "tests", "load_testing"},
    "models": {"api", "registry", "tools", "tests", "load_testing"},
}


def _root() -> Path:
    runfiles = os.environ.get("RUNFILES_DIR") or os.environ.get("TEST_SRCDIR")
    if runfiles:
        return Path(runfiles) / os.environ.get("TEST_WORKSPACE", "conveyor")
    return Path(__file__).resolve().parents[2]


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def _sources(layer: str) -> list[Path]:
    return sorted(
        path
        for path in (_root() / layer).rglob("*.py")
        if "tests" not in path.relative_to(_root() / layer).parts
    )


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_only_what_it_may(layer: str) -> None:
    sources = _sources(layer)
    assert sources, f"no sources of {layer}/ in the test's runfiles"
    wrong = [
        f"{path.relative_to(_root())}:{line}: imports {module}"
        for path in sources
        for line, module in _imports(path)
        if module.split(".")[0] in FORBIDDEN[layer]
    ]
    assert wrong == [], "\n".join(wrong)
