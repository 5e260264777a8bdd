"""A model written outside the repository, as a user would, and a venv with our wheels.

``ECHO_PROTO`` and ``ECHO_MODEL`` are the files of a user's own project (their ``.proto``
compiled by grpcio-tools' protoc inside the venv); ``make_venv`` installs ``conveyor-worker``,
``conveyor-client`` and grpcio-tools with ``pip install --no-index`` from a directory holding
our two wheels and the locked dependencies (``locked_wheels.repack``): never the network.
"""

from __future__ import annotations

import email.parser
import glob
import os
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

from tests.wheels import locked_wheels

ECHO_PROTO = """\
syntax = "proto3";
package byom.v1;
message EchoRequest { string text = 1; double seconds = 2; }
message EchoResponse { string text = 1; int32 length = 2; }
"""

ECHO_MODEL = '''\
"""A user's model: upper-cases text (after sleeping `seconds`); refuses "bad"."""
import asyncio

import echo_pb2
import worker_base
from worker_base import InvalidRequest, Model

print("worker_base from", worker_base.__file__, flush=True)


class Echo(Model):
    name = "echo"

    async def process_request(self, body):
        request = echo_pb2.EchoRequest.FromString(body)
        if request.text == "bad":
            raise InvalidRequest("bad is not a word", field="text")
        await asyncio.sleep(request.seconds)
        return echo_pb2.EchoResponse(text=request.text.upper(), length=len(request.text))

    def get_request_format(self):
        return echo_pb2.EchoRequest.DESCRIPTOR

    def get_response_format(self):
        return echo_pb2.EchoResponse.DESCRIPTOR
'''

# grpcio-tools: what a user adds to compile their .proto.
USER_PACKAGES = ["grpcio-tools"]


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


def wheel_requires(wheel: Path) -> list[str]:
    """The distributions a wheel of ours requires."""
    from packaging.requirements import Requirement

    with zipfile.ZipFile(wheel) as archive:
        meta = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        return [Requirement(t).name for t in _requires(archive.read(meta).decode())]


def make_venv(root: Path, our_wheels: list[Path], site: Path) -> Path:
    """A fresh venv at ``root/venv`` with our wheels and grpcio-tools pip-installed offline;
    returns its ``bin`` directory."""
    index = root / "wheels"
    index.mkdir(parents=True)
    roots = [r for w in our_wheels for r in wheel_requires(w)] + USER_PACKAGES
    for info in closure(site, roots):
        locked_wheels.repack_one(site, info, index)
    for wheel in our_wheels:
        shutil.copy(wheel, index / wheel.name)
    venv = root / "venv"
    subprocess.run([python311(), "-m", "venv", str(venv)], check=True, env=_clean_env())
    pip = [
        str(venv / "bin" / "python"),
        "-m",
        "pip",
        "install",
        "--no-index",
        "--find-links",
        str(index),
    ]
    names = ["conveyor-worker", "conveyor-client", *USER_PACKAGES]
    subprocess.run(
        [*pip, "--disable-pip-version-check", "-q", *names], check=True, env=_clean_env()
    )
    return venv / "bin"


def _clean_env() -> dict[str, str]:
    """No PYTHONPATH (the test's runfiles) and no pip configuration leaks into the venv."""
    keep = ("PATH", "HOME", "TMPDIR", "LANG")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_NO_INDEX"] = "1"
    return env


def write_model(project: Path, venv_bin: Path) -> None:
    """The user's project: ``echo.proto`` compiled to ``echo_pb2.py``, and ``echo_model.py``."""
    project.mkdir(parents=True)
    (project / "echo.proto").write_text(ECHO_PROTO)
    (project / "echo_model.py").write_text(ECHO_MODEL)
    protoc = [
        str(venv_bin / "python"),
        "-m",
        "grpc_tools.protoc",
        "-I.",
        "--python_out=.",
        "echo.proto",
    ]
    subprocess.run(protoc, check=True, cwd=project, env=_clean_env())
