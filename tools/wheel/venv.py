"""A fresh venv with our wheels pip-installed offline, as a user's environment would have them.

``make_venv`` installs our wheels and the packages asked for with ``pip install --no-index``
from a directory holding our wheels and their locked dependencies, rebuilt from the locked
site-packages (``locked_wheels``): never the network. The venv's interpreter is a CPython 3.11
with ``venv`` and ``ensurepip`` (``python311``), not the hermetic one (which has no pip). Used by
the wheels' tests and by the benchmark's wheel-installed worker.
"""

from __future__ import annotations

import email.parser
import glob
import os
import re
import shutil
import subprocess
import zipfile
from collections.abc import Sequence
from pathlib import Path

from tools.wheel import locked_wheels

__all__ = ["clean_env", "closure", "make_venv", "python311", "wheel_requires"]


def python311() -> str:
    """A CPython 3.11 with ``venv`` and ``ensurepip`` (the hermetic Debian one has no pip).

    ``CONVEYOR_VENV_PYTHON`` if set, else ``python3.11`` on PATH; a pyenv shim (which needs
    the user's HOME, which Bazel replaces) is resolved to the interpreter it stands for.
    """
    found = os.environ.get("CONVEYOR_VENV_PYTHON") or shutil.which("python3.11")
    if found is None:
        raise AssertionError("no python3.11 on PATH: set CONVEYOR_VENV_PYTHON")
    shim = Path(found)
    if shim.parent.name == "shims":
        versions = sorted(
            glob.glob(str(shim.parent.parent / "versions" / "3.11*" / "bin" / "python3.11"))
        )
        if versions:
            return versions[-1]
    return found


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requires(metadata_text: str) -> list[str]:
    return email.parser.Parser().parsestr(metadata_text).get_all("Requires-Dist") or []


def closure(site: Path, roots: list[str]) -> list[Path]:
    """The dist-info directories of ``roots`` and everything they require (markers evaluated
    for this interpreter, extras left out)."""
    from packaging.requirements import Requirement

    infos = {}
    for info in site.glob("*.dist-info"):
        name = email.parser.Parser().parsestr((info / "METADATA").read_text())["Name"]
        infos[_normalize(str(name))] = info
    todo, seen = [_normalize(r) for r in roots], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if name not in infos:
            raise AssertionError(f"{name} is not among the locked packages at {site}")
        for text in _requires((infos[name] / "METADATA").read_text()):
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(_normalize(req.name))
    return [infos[name] for name in sorted(seen)]


def wheel_requires(wheel: Path, extras: Sequence[str] = ()) -> list[str]:
    """The distributions a wheel of ours requires, with those of its ``extras``."""
    from packaging.requirements import Requirement

    with zipfile.ZipFile(wheel) as archive:
        meta = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        requirements = [Requirement(t) for t in _requires(archive.read(meta).decode())]
    return [
        r.name
        for r in requirements
        if r.marker is None or any(r.marker.evaluate({"extra": e}) for e in ("", *extras))
    ]


def _distribution(wheel: Path) -> str:
    return wheel.name.split("-")[0]


def _extras(install: Sequence[str], wheel: Path) -> list[str]:
    """The extras ``install`` asks of ``wheel``'s distribution."""
    from packaging.requirements import Requirement

    name = _normalize(_distribution(wheel))
    return [
        extra
        for text in install
        if _normalize((r := Requirement(text)).name) == name
        for extra in r.extras
    ]


def make_venv(root: Path, our_wheels: Sequence[Path], site: Path, install: Sequence[str]) -> Path:
    """A fresh venv at ``root/venv`` with ``install`` (requirement strings: our distributions,
    extras allowed, and locked third-party packages) pip-installed offline from ``our_wheels``
    and the locked packages of ``site``; returns its ``bin`` directory."""
    from packaging.requirements import Requirement

    index = root / "wheels"
    index.mkdir(parents=True)
    ours = {_normalize(_distribution(w)) for w in our_wheels}
    roots = [r for w in our_wheels for r in wheel_requires(w, _extras(install, w))]
    roots += [Requirement(r).name for r in install if _normalize(Requirement(r).name) not in ours]
    for info in closure(site, roots):
        locked_wheels.repack_one(site, info, index)
    for wheel in our_wheels:
        shutil.copy(wheel, index / wheel.name)
    venv = root / "venv"
    subprocess.run([python311(), "-m", "venv", str(venv)], check=True, env=clean_env())
    pip = [
        str(venv / "bin" / "python"),
        "-m",
        "pip",
        "install",
        "--no-index",
        "--find-links",
        str(index),
    ]
    subprocess.run(
        [*pip, "--disable-pip-version-check", "-q", *install], check=True, env=clean_env()
    )
    return venv / "bin"


def clean_env() -> dict[str, str]:
    """No PYTHONPATH (the test's runfiles) and no pip configuration leaks into the venv."""
    keep = ("PATH", "HOME", "TMPDIR", "LANG")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_NO_INDEX"] = "1"
    return env
