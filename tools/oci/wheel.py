"""Installing a pure-Python wheel into a layer tree: what ``pip install --no-deps`` writes.

The wheel's files go under the image's site-packages, each ``console_scripts`` entry point
becomes a script in the scripts directory run by the image's interpreter, and the
``.dist-info`` directory gets ``INSTALLER`` and a ``RECORD`` listing every installed file, so
pip in the image sees the distribution as installed (``pip show``, ``pip check``, upgrades).
Only what a pure-Python wheel may hold is accepted: ``*.data/purelib``, ``platlib`` and
``scripts``; headers or data files raise ``SpecError``.
"""

from __future__ import annotations

import base64
import configparser
import csv
import hashlib
import io
import posixpath
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tools.oci.errors import SpecError
from tools.oci.tree import LayerTree, normalize

__all__ = ["INSTALLER", "WheelTarget", "add_wheel"]

INSTALLER = "conveyor-oci"
"""What ``.dist-info/INSTALLER`` names as the tool that installed the wheel."""

_SCRIPT = """\
#!{interpreter}
import sys

from {module} import {head}

if __name__ == "__main__":
    sys.exit({call}())
"""


@dataclass(frozen=True)
class WheelTarget:
    """Where wheels go in the image: ``/usr/local/lib/python3.11/dist-packages``,
    ``/usr/local/bin`` and ``/usr/bin/python3.11`` on Debian's Python."""

    site_packages: str
    scripts: str
    interpreter: str


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return f"sha256={digest.decode()}"


def _dist_info(names: list[str], wheel: Path) -> str:
    infos = sorted({n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info")})
    if len(infos) != 1:
        raise SpecError(f"{wheel.name}: expected one .dist-info directory, found {infos}")
    return infos[0]


class _CaseKeepingParser(configparser.ConfigParser):
    """``entry_points.txt`` as written: script names keep their case."""

    def optionxform(self, optionstr: str) -> str:
        return optionstr


def _console_scripts(entry_points: str, wheel: Path) -> list[tuple[str, str, str]]:
    """``(script, module, qualified name)`` of each ``console_scripts`` entry point."""
    parser = _CaseKeepingParser(delimiters=("=",), interpolation=None)
    parser.read_string(entry_points)
    if not parser.has_section("console_scripts"):
        return []
    scripts = []
    for script, target in sorted(parser.items("console_scripts")):
        module, sep, qualname = target.partition(":")
        qualname = qualname.split("[")[0].strip()
        if not sep or not module.strip() or not qualname:
            raise SpecError(f"{wheel.name}: entry point {script} = {target!r} is not module:name")
        scripts.append((script, module.strip(), qualname))
    return scripts


def _destination(name: str, data_dir: str, target: WheelTarget, wheel: Path) -> str:
    parts = name.split("/")
    if parts[0] != data_dir:
        return posixpath.join(target.site_packages, name)
    kind, rest = parts[1], "/".join(parts[2:])
    if kind in ("purelib", "platlib"):
        return posixpath.join(target.site_packages, rest)
    if kind == "scripts":
        return posixpath.join(target.scripts, rest)
    raise SpecError(f"{wheel.name}: {name}: .data/{kind} is not installed by the image tool")


def add_wheel(tree: LayerTree, wheel: Path, target: WheelTarget) -> str:
    """Installs ``wheel`` into ``tree`` at ``target``; returns its ``.dist-info`` directory's
    name."""
    with zipfile.ZipFile(wheel) as archive:
        names = sorted(n for n in archive.namelist() if not n.endswith("/"))
        dist_info = _dist_info(names, wheel)
        data_dir = dist_info.removesuffix(".dist-info") + ".data"
        installed: dict[str, bytes] = {}
        modes: dict[str, int] = {}
        entry_points = ""
        for name in names:
            if name in (f"{dist_info}/RECORD", f"{dist_info}/INSTALLER"):
                continue
            data = archive.read(name)
            dest = _destination(name, data_dir, target, wheel)
            mode = 0o644
            if name.startswith(f"{data_dir}/scripts/"):
                mode = 0o755
                if data.startswith(b"#!python"):
                    data = b"#!" + target.interpreter.encode() + data[len(b"#!python") :]
            installed[dest] = data
            modes[dest] = mode
            if name == f"{dist_info}/entry_points.txt":
                entry_points = data.decode()
    for script, module, qualname in _console_scripts(entry_points, wheel):
        dest = posixpath.join(target.scripts, script)
        script_text = _SCRIPT.format(
            interpreter=target.interpreter,
            module=module,
            head=qualname.split(".")[0],
            call=qualname,
        )
        installed[dest] = script_text.encode()
        modes[dest] = 0o755
    info_dir = posixpath.join(target.site_packages, dist_info)
    installed[posixpath.join(info_dir, "INSTALLER")] = (INSTALLER + "\n").encode()
    modes[posixpath.join(info_dir, "INSTALLER")] = 0o644
    record_path = posixpath.join(info_dir, "RECORD")
    rows = []
    for dest in sorted(installed):
        tree.add_file(dest, installed[dest], modes[dest])
        relative = posixpath.relpath(normalize(dest), normalize(target.site_packages))
        rows.append([relative, _record_hash(installed[dest]), str(len(installed[dest]))])
    site = normalize(target.site_packages)
    rows.append([posixpath.relpath(normalize(record_path), site), "", ""])
    record = io.StringIO()
    csv.writer(record, lineterminator="\n").writerows(rows)
    tree.add_file(record_path, record.getvalue().encode(), 0o644)
    return dist_info
