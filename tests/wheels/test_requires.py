"""Each wheel's ``Requires-Dist`` names every third-party distribution its modules import.

A py_library that gains a dependency (say, opentelemetry for traces) without the wheel's
``requires`` in tools/wheel/BUILD.bazel growing fails here, at unit-test speed, rather than
with an ImportError in a user's environment.
"""

import ast
import importlib.metadata
import os
import re
import sys
import zipfile
from pathlib import Path

import pytest

WHEELS = [Path(p) for p in os.environ["CONVEYOR_WHEELS"].split()]


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _imports(source: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("wheel", WHEELS, ids=[w.name for w in WHEELS])
def test_every_third_party_import_is_required(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
        required = {
            _normalize(re.split(r"[<>=!~ ;\[]", line.split(":", 1)[1].strip())[0])
            for line in archive.read(meta).decode().splitlines()
            if line.startswith("Requires-Dist:")
        }
        shipped = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
        imported = set()
        for name in names:
            if name.endswith(".py"):
                imported |= _imports(archive.read(name).decode())
    third_party = imported - shipped - set(sys.stdlib_module_names) - {"__future__"}
    providers = importlib.metadata.packages_distributions()
    missing = {}
    for module in sorted(third_party):
        dists = {_normalize(d) for d in providers.get(module, [])}
        if not dists & required:
            missing[module] = sorted(dists) or ["(no distribution found)"]
    assert not missing, f"{wheel.name} imports these without requiring them: {missing}"
