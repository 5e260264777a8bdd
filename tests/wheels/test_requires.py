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


def _module_level_imports(source: str) -> set[str]:
    """What importing a module imports: its top-level imports, ``try`` and ``if`` bodies
    included, ``if TYPE_CHECKING:`` blocks and function bodies left out."""
    names: set[str] = set()
    pending: list[ast.stmt] = list(ast.parse(source).body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.If):
            if not (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
                pending += node.body + node.orelse
        elif isinstance(node, ast.Try):
            pending += node.body + node.orelse + node.finalbody
    return names


def _metadata(archive: zipfile.ZipFile) -> tuple[set[str], dict[str, set[str]]]:
    """The wheel's base requirements and each extra's, by normalized distribution name."""
    meta = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
    base: set[str] = set()
    extras: dict[str, set[str]] = {}
    for line in archive.read(meta).decode().splitlines():
        if line.startswith("Provides-Extra:"):
            extras[line.split(":", 1)[1].strip()] = set()
        elif line.startswith("Requires-Dist:"):
            req, _, marker = line.split(":", 1)[1].strip().partition("; extra == ")
            name = _normalize(re.split(r"[<>=!~ \[]", req)[0])
            (extras[marker.strip('"')] if marker else base).add(name)
    return base, extras


@pytest.mark.parametrize("wheel", WHEELS, ids=[w.name for w in WHEELS])
def test_the_base_imports_without_the_extras(wheel: Path) -> None:
    """Every package ``__init__`` (and ``conveyor-worker``) imports with the base requirements
    alone (``import worker_base`` works without numpy); every other module with what the base
    and one extra give (``worker_base.onnx_model``: the ``onnx`` extra)."""
    providers = importlib.metadata.packages_distributions()
    with zipfile.ZipFile(wheel) as archive:
        base, extras = _metadata(archive)
        sources = {
            n[: -len(".py")].replace("/", ".").removesuffix(".__init__"): archive.read(n).decode()
            for n in archive.namelist()
            if n.endswith(".py")
        }
    imports = {module: _module_level_imports(text) for module, text in sources.items()}

    shipped = {module.split(".")[0] for module in sources}

    def dists(top: str) -> set[str]:
        return {_normalize(d) for d in providers.get(top, [])}

    def needs(module: str, seen: set[str]) -> set[str]:
        """The third-party top-level modules importing ``module`` imports."""
        if module in seen:
            return set()
        seen.add(module)
        found: set[str] = set()
        for name in imports[module]:
            if name in sources:
                found |= needs(name, seen)
            elif name.split(".")[0] not in shipped | set(sys.stdlib_module_names):
                found.add(name.split(".")[0])
        parent = module.rpartition(".")[0]
        return found | (needs(parent, seen) if parent in sources else set())

    # Each module's imports that no base requirement provides.
    wanted = {
        module: {top for top in needs(module, set()) if not dists(top) & base} for module in sources
    }
    for module, missing in wanted.items():
        assert not missing or any(
            all(dists(top) & reqs for top in missing) for reqs in extras.values()
        ), f"{wheel.name}: importing {module} takes {sorted(missing)}, in no one extra"
    packages = [m for m in sources if any(n.startswith(f"{m}.") for n in sources)]
    for package in packages:
        assert not wanted[package], f"{wheel.name}: {package} needs {sorted(wanted[package])}"
    if "worker_base" in sources:
        assert wanted["worker_base.tensor_model"] == {"numpy"} <= extras["tensors"]
        assert wanted["worker_base.onnx_model"] == {"numpy", "onnxruntime"} <= extras["onnx"]
        assert wanted["worker_base.cli"] == set()
