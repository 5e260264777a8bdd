"""Images are reproducible: every tarball of ``//:images`` (the stack's, the worker base and the
ONNX worker) is built again here from the inputs Bazel gave its builder, in a fresh directory,
by a separate builder process whose environment differs (hash seed, umask, time zone, working
directory, home), and must come out byte for byte the same, with the same manifest digest.

The inputs are the ``image_inputs`` output group of ``//:images`` (each image's spec and every
file it names); their execroot paths, as written in the spec, are rebuilt as symlinks into the
test's runfiles.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tools.stack.services import SERVICES

_BUILD_TIMEOUT_SECONDS = 600
_NOT_SERVICES = ["conveyor/worker:dev", "conveyor/onnx:dev"]
"""The images of ``//:images`` no service of the stack runs: the worker base, the ONNX worker."""


def _env_paths(name: str, suffix: str) -> list[str]:
    return [p for p in os.environ.get(name, "").split() if p.endswith(suffix)]


_SPECS = _env_paths("CONVEYOR_IMAGE_SPECS", ".spec.json")


def _runfiles_root() -> Path:
    return Path(os.environ.get("RUNFILES_DIR") or os.environ["TEST_SRCDIR"]).resolve()


def _runfile(exec_path: str) -> Path:
    """Where an input named by its execroot path (``bazel-out/<cfg>/bin/x``, ``external/r/x``,
    ``x``) lies in the runfiles tree."""
    relative = re.sub(r"^bazel-out/[^/]+/bin/", "", exec_path)
    if relative.startswith("external/"):
        return _runfiles_root() / relative.removeprefix("external/")
    return _runfiles_root() / os.environ["TEST_WORKSPACE"] / relative


def _inputs(spec: dict[str, object]) -> list[str]:
    layers = spec["layers"]
    assert isinstance(layers, list)
    paths: list[str] = []
    for layer in layers:
        paths += layer.get("debs", [])
        paths += layer.get("wheels", [])
        paths += [item["src"] for item in layer.get("files", [])]
    return paths


def _stage(spec: dict[str, object], execroot: Path) -> int:
    """Links every input of ``spec`` at its execroot path under ``execroot``; returns how many."""
    inputs = _inputs(spec)
    for exec_path in inputs:
        source = _runfile(exec_path)
        assert source.is_file(), f"input {exec_path} not in runfiles (looked at {source})"
        link = execroot / exec_path
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to(source)
    return len(inputs)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def test_every_image_of_the_stack_the_worker_base_and_the_onnx_worker_is_checked() -> None:
    tags = sorted(json.loads(Path(spec).read_text())["tag"] for spec in _SPECS)
    expected = sorted([service.image for service in SERVICES] + _NOT_SERVICES)
    assert tags == expected, f"expected an image per service, and {_NOT_SERVICES}; got {_SPECS}"


@pytest.mark.parametrize("spec_path", _SPECS)
def test_rebuild_in_a_fresh_directory_gives_the_same_image(spec_path: str, tmp_path: Path) -> None:
    built_tarball = Path(spec_path.removesuffix(".spec.json") + ".tar")
    built_digest = Path(spec_path.removesuffix(".spec.json") + ".digest").read_text().strip()
    spec = json.loads(Path(spec_path).read_text())
    execroot = tmp_path / "execroot"
    assert _stage(spec, execroot) > 0
    out, digest_file = tmp_path / "again.tar", tmp_path / "again.digest"
    home = tmp_path / "home"
    home.mkdir()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(_runfiles_root() / os.environ["TEST_WORKSPACE"]),
        "PYTHONHASHSEED": "4242",  # the builder pins its own seed (set order in bytecode)
        "HOME": str(home),
        "TZ": "Pacific/Kiritimati",
        "LC_ALL": "C.UTF-8",
    }
    command = [sys.executable, "-m", "tools.oci.build", "--spec", str(Path(spec_path).resolve())]
    command += ["--out", str(out), "--digest", str(digest_file)]
    result = subprocess.run(
        command,
        cwd=execroot,
        env=env,
        umask=0o077,
        capture_output=True,
        text=True,
        timeout=_BUILD_TIMEOUT_SECONDS,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert built_digest.startswith("sha256:")
    assert digest_file.read_text().strip() == built_digest
    assert _sha256(out) == _sha256(built_tarball)
