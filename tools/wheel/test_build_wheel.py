"""The wheel builder: ranges from the lock, a valid RECORD, the same bytes on every build."""

import base64
import hashlib
import os
import zipfile
from pathlib import Path

import pytest

from tools.wheel import build_wheel

LOCK = """\
aio-pika==10.2.1 \\
    --hash=sha256:00
    # via -r requirements.in
uvloop==0.23.0 \\
    --hash=sha256:00
protobuf==6.33.6 \\
    --hash=sha256:00
"""


def _build(tmp_path: Path, out: str, extra: list[str] | None = None) -> Path:
    lock = tmp_path / "requirements.lock"
    lock.write_text(LOCK)
    source = tmp_path / "src" / "pkg"
    source.mkdir(parents=True, exist_ok=True)
    (source / "__init__.py").write_text('"""pkg."""\n')
    (source / "cli.py").write_text("def main() -> None:\n    print('hi')\n")
    argv = [
        "--out", str(tmp_path / out),
        "--name", "demo-pkg",
        "--version", "1.2.3",
        "--summary", "A demo.",
        "--lock", str(lock),
        "--requires", "aio-pika",
        "--requires", "uvloop",
        "--requires", "protobuf",
        "--requires", "typing-extensions:>=4",
        "--entry-point", "demo=pkg.cli:main",
        "--file", f"pkg/cli.py={source / 'cli.py'}",
        "--file", f"pkg/__init__.py={source / '__init__.py'}",
    ] + (extra or [])  # fmt: skip
    build_wheel.build(build_wheel.parse(argv))
    return tmp_path / out


def test_version_ranges() -> None:
    assert build_wheel.version_range("10.2.1") == ">=10.2,<11"
    assert build_wheel.version_range("0.23.0") == ">=0.23,<0.24"
    assert build_wheel.version_range("6.33.6") == ">=6.33,<7"
    assert build_wheel.version_range("3") == ">=3.0,<4"


def test_metadata_entry_points_and_record(tmp_path: Path) -> None:
    wheel = _build(tmp_path, "a.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        assert names == [
            "pkg/__init__.py",
            "pkg/cli.py",
            "demo_pkg-1.2.3.dist-info/METADATA",
            "demo_pkg-1.2.3.dist-info/WHEEL",
            "demo_pkg-1.2.3.dist-info/entry_points.txt",
            "demo_pkg-1.2.3.dist-info/RECORD",
        ]
        meta = archive.read("demo_pkg-1.2.3.dist-info/METADATA").decode()
        assert "Name: demo-pkg\n" in meta
        assert "Requires-Python: >=3.11\n" in meta
        assert "Requires-Dist: aio-pika>=10.2,<11\n" in meta
        assert "Requires-Dist: uvloop>=0.23,<0.24\n" in meta
        assert "Requires-Dist: typing-extensions>=4\n" in meta
        assert "Tag: py3-none-any" in archive.read("demo_pkg-1.2.3.dist-info/WHEEL").decode()
        scripts = archive.read("demo_pkg-1.2.3.dist-info/entry_points.txt").decode()
        assert scripts == "[console_scripts]\ndemo = pkg.cli:main\n"
        rows = archive.read("demo_pkg-1.2.3.dist-info/RECORD").decode().splitlines()
        assert len(rows) == len(names)
        for row in rows:
            path, digest, size = row.split(",")
            if path.endswith("RECORD"):
                assert (digest, size) == ("", "")
                continue
            data = archive.read(path)
            expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            assert digest == "sha256=" + expected.decode()
            assert int(size) == len(data)
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_same_bytes_after_touching_the_sources(tmp_path: Path) -> None:
    first = _build(tmp_path, "first.whl").read_bytes()
    for path in (tmp_path / "src" / "pkg").iterdir():
        os.utime(path, (2_000_000_000, 2_000_000_000))
    second = _build(tmp_path, "second.whl").read_bytes()
    assert hashlib.sha256(first).hexdigest() == hashlib.sha256(second).hexdigest()


def test_a_dependency_missing_from_the_lock_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="not-locked is not pinned"):
        _build(tmp_path, "bad.whl", ["--requires", "not-locked"])


def test_extras_are_marked_requirements(tmp_path: Path) -> None:
    extra = [
        "--extra-requires", "onnx=uvloop",
        "--extra-requires", "onnx=aio-pika",
        "--extra-requires", "fast=typing-extensions:>=4",
    ]  # fmt: skip
    wheel = _build(tmp_path, "extras.whl", extra)
    with zipfile.ZipFile(wheel) as archive:
        meta = archive.read("demo_pkg-1.2.3.dist-info/METADATA").decode()
    lines = meta.splitlines()
    assert lines[-5:] == [
        "Provides-Extra: fast",
        'Requires-Dist: typing-extensions>=4; extra == "fast"',
        "Provides-Extra: onnx",
        'Requires-Dist: aio-pika>=10.2,<11; extra == "onnx"',
        'Requires-Dist: uvloop>=0.23,<0.24; extra == "onnx"',
    ]
    assert lines.index("Provides-Extra: fast") > lines.index("Requires-Dist: uvloop>=0.23,<0.24")


@pytest.mark.parametrize("item", ["onnx", "=numpy", "Bad_Name=numpy", "onnx="])
def test_a_malformed_extra_is_an_error(tmp_path: Path, item: str) -> None:
    with pytest.raises(SystemExit, match="is not EXTRA=DIST"):
        _build(tmp_path, "bad.whl", ["--extra-requires", item])


def test_an_extras_dependency_missing_from_the_lock_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="not-locked is not pinned"):
        _build(tmp_path, "bad.whl", ["--extra-requires", "x=not-locked"])
