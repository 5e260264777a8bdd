"""Wheels installed into a layer: files, console scripts, INSTALLER and a RECORD pip can read."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import zipfile
from pathlib import Path

import pytest

from tools.oci.errors import SpecError
from tools.oci.tree import Kind, LayerTree
from tools.oci.wheel import INSTALLER, WheelTarget, add_wheel

TARGET = WheelTarget(
    site_packages="/usr/local/lib/python3.11/dist-packages",
    scripts="/usr/local/bin",
    interpreter="/usr/bin/python3.11",
)
SITE = "usr/local/lib/python3.11/dist-packages"


def _wheel(path: Path, extra: dict[str, bytes] | None = None) -> Path:
    members = {
        "demo/__init__.py": b"",
        "demo/cli.py": b"def main():\n    return 0\n",
        "demo-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n",
        "demo-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\n",
        "demo-1.0.dist-info/entry_points.txt": b"[console_scripts]\nDemo-Run = demo.cli:main\n",
        "demo-1.0.dist-info/RECORD": b"stale,,\n",
        **(extra or {}),
    }
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _record(tree: LayerTree) -> dict[str, tuple[str, str]]:
    entry = tree.get(f"{SITE}/demo-1.0.dist-info/RECORD")
    assert entry is not None
    rows = csv.reader(io.StringIO(entry.data.decode()))
    return {row[0]: (row[1], row[2]) for row in rows}


def test_files_go_to_site_packages_and_the_script_to_the_scripts_directory(
    tmp_path: Path,
) -> None:
    tree = LayerTree()
    assert add_wheel(tree, _wheel(tmp_path / "demo-1.0-py3-none-any.whl"), TARGET) == (
        "demo-1.0.dist-info"
    )
    module = tree.get(f"{SITE}/demo/cli.py")
    assert module is not None and module.data.startswith(b"def main")
    script = tree.get("usr/local/bin/Demo-Run")
    assert script is not None and script.kind is Kind.FILE and script.mode == 0o755
    text = script.data.decode()
    assert text.startswith("#!/usr/bin/python3.11\n")
    assert "from demo.cli import main" in text and "sys.exit(main())" in text
    compile(text, "Demo-Run", "exec")
    installer = tree.get(f"{SITE}/demo-1.0.dist-info/INSTALLER")
    assert installer is not None and installer.data == f"{INSTALLER}\n".encode()


def test_record_lists_every_installed_file_with_its_hash(tmp_path: Path) -> None:
    tree = LayerTree()
    add_wheel(tree, _wheel(tmp_path / "demo-1.0-py3-none-any.whl"), TARGET)
    record = _record(tree)
    assert record["demo-1.0.dist-info/RECORD"] == ("", "")
    assert "../../../bin/Demo-Run" in record
    for path, (digest, size) in record.items():
        if path.endswith("/RECORD"):
            continue
        entry = tree.get(f"{SITE}/{path}")
        assert entry is not None, path
        expected = base64.urlsafe_b64encode(hashlib.sha256(entry.data).digest()).rstrip(b"=")
        assert digest == f"sha256={expected.decode()}"
        assert size == str(len(entry.data))


def test_data_scripts_get_the_interpreter_and_data_files_are_refused(tmp_path: Path) -> None:
    tree = LayerTree()
    scripts = {"demo-1.0.data/scripts/tool": b"#!python\nprint(1)\n"}
    add_wheel(tree, _wheel(tmp_path / "demo-1.0-py3-none-any.whl", scripts), TARGET)
    tool = tree.get("usr/local/bin/tool")
    assert tool is not None and tool.data == b"#!/usr/bin/python3.11\nprint(1)\n"
    assert tool.mode == 0o755
    headers = {"demo-1.0.data/headers/demo.h": b""}
    with pytest.raises(SpecError, match="headers"):
        add_wheel(LayerTree(), _wheel(tmp_path / "h-1.0-py3-none-any.whl", headers), TARGET)


def test_the_same_wheel_gives_the_same_entries(tmp_path: Path) -> None:
    wheel = _wheel(tmp_path / "demo-1.0-py3-none-any.whl")
    first, second = LayerTree(), LayerTree()
    add_wheel(first, wheel, TARGET)
    add_wheel(second, wheel, TARGET)
    assert first.entries() == second.entries()
