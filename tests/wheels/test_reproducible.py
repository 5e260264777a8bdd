"""The wheels Bazel built are a function of their contents alone: building them again from the
same files (fresh timestamps, another directory) gives the same bytes, and RECORD is right."""

import base64
import email.parser
import hashlib
import os
import zipfile
from pathlib import Path

import pytest

from tools.wheel import build_wheel

WHEELS = [Path(p) for p in os.environ["CONVEYOR_WHEELS"].split()]


def _rebuild(wheel: Path, tmp_path: Path) -> bytes:
    with zipfile.ZipFile(wheel) as archive:
        info = next(n.split("/")[0] for n in archive.namelist() if n.endswith(".dist-info/WHEEL"))
        meta = email.parser.Parser().parsestr(archive.read(f"{info}/METADATA").decode())
        argv = ["--out", str(tmp_path / wheel.name), "--lock", os.devnull]
        argv += ["--name", str(meta["Name"]), "--version", str(meta["Version"])]
        argv += ["--summary", str(meta["Summary"])]
        for req in meta.get_all("Requires-Dist") or []:
            req, _, marker = req.partition("; extra == ")
            name = req.split(">")[0].split("<")[0].split("=")[0]
            if marker:
                argv += ["--extra-requires", f"{marker.strip(chr(34))}={name}:{req[len(name) :]}"]
            else:
                argv += ["--requires", f"{name}:{req[len(name) :]}"]
        if f"{info}/entry_points.txt" in archive.namelist():
            for line in archive.read(f"{info}/entry_points.txt").decode().splitlines()[1:]:
                argv += ["--entry-point", line.replace(" = ", "=")]
        for name in archive.namelist():
            if name.startswith(info):
                continue
            path = tmp_path / "files" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(archive.read(name))
            argv += ["--file", f"{name}={path}"]
    build_wheel.build(build_wheel.parse(argv))
    return (tmp_path / wheel.name).read_bytes()


@pytest.mark.parametrize("wheel", WHEELS, ids=[w.name for w in WHEELS])
def test_rebuilt_from_its_files_it_is_the_same_bytes(wheel: Path, tmp_path: Path) -> None:
    assert _rebuild(wheel, tmp_path) == wheel.read_bytes()


@pytest.mark.parametrize("wheel", WHEELS, ids=[w.name for w in WHEELS])
def test_record_lists_every_file_with_its_digest(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        record = next(n for n in archive.namelist() if n.endswith(".dist-info/RECORD"))
        rows = dict(
            (line.split(",")[0], line.split(",")[1])
            for line in archive.read(record).decode().splitlines()
        )
        assert set(rows) == set(archive.namelist())
        for name in archive.namelist():
            if name != record:
                digest = hashlib.sha256(archive.read(name)).digest()
                assert (
                    rows[name] == "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
                )
            assert archive.getinfo(name).date_time == (1980, 1, 1, 0, 0, 0)


def test_the_worker_wheel_ships_its_packages_and_script() -> None:
    [worker] = [w for w in WHEELS if w.name.startswith("conveyor_worker-")]
    with zipfile.ZipFile(worker) as archive:
        names = set(archive.namelist())
        meta = archive.read("conveyor_worker-0.1.0.dist-info/METADATA").decode()
        scripts = archive.read("conveyor_worker-0.1.0.dist-info/entry_points.txt").decode()
    assert {"worker_base/cli.py", "conveyor/amqp.py", "proto/task_pb2.py"} <= names
    assert not any(n.startswith(("api/", "registry/", "models/", "tests/")) for n in names)
    assert "proto/__init__.py" not in names  # a namespace package: a user's proto/ merges in
    assert "Requires-Python: >=3.11" in meta
    assert "Requires-Dist: aio-pika>=10.2,<11" in meta
    assert "conveyor-worker = worker_base.cli:main" in scripts
