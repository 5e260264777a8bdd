"""Builds a reproducible pure-Python wheel (``py3-none-any``) from files and metadata.

Run by the ``py_wheel`` rule (tools/wheel/defs.bzl) on the hermetic interpreter:

    build_wheel.py --out OUT.whl --name NAME --version VERSION --summary TEXT
        --lock requirements.lock --requires DIST[:SPEC] ... --extra-requires EXTRA=DIST[:SPEC] ...
        --entry-point NAME=MOD:FUNC ... --file ARCHIVE_PATH=SOURCE_PATH ...

The archive is the same bytes on every build: entries sorted by name, every timestamp
1980-01-01 00:00:00 (the earliest a zip can hold), every mode 0644, deflate at a fixed level.
``Requires-Dist`` gets a *range* from the version the lock pins (``X.Y.Z`` becomes
``>=X.Y,<X+1``; below 1.0, ``0.Y.Z`` becomes ``>=0.Y,<0.Y+1``), so the wheel installs beside a
user's own pins; a distribution missing from the lock is an error. An extra (``pip install
'dist[onnx]'``) is a ``Provides-Extra`` line and its requirements, each marked
``; extra == "onnx"``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import re
import sys
import zipfile
from pathlib import Path

_EPOCH = (1980, 1, 1, 0, 0, 0)
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([0-9][^ \\;]*)")


def normalize(name: str) -> str:
    """PEP 503 normalized name (``aio_pika`` and ``aio-pika`` are the same)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(lock_text: str) -> dict[str, str]:
    """The ``name==version`` lines of a pip lock file, by normalized name."""
    found: dict[str, str] = {}
    for line in lock_text.splitlines():
        match = _PIN.match(line.strip())
        if match:
            found[normalize(match.group(1))] = match.group(2)
    return found


def version_range(version: str) -> str:
    """The range a wheel asks for, given the version the lock pins (see the module doc)."""
    numbers = [int(part) for part in re.findall(r"\d+", version)[:2]] + [0]
    major, minor = numbers[0], numbers[1]
    if major == 0:
        return f">=0.{minor},<0.{minor + 1}"
    return f">={major}.{minor},<{major + 1}"


def requirement(spec: str, locked: dict[str, str]) -> str:
    """One ``Requires-Dist`` value: ``name`` gets the lock's range, ``name:SPEC`` keeps SPEC."""
    name, _, explicit = spec.partition(":")
    if explicit:
        return f"{name}{explicit}"
    version = locked.get(normalize(name))
    if version is None:
        raise SystemExit(f"build_wheel: {name} is not pinned in the lock; add it or give a range")
    return f"{name}{version_range(version)}"


def extras(specs: list[str], locked: dict[str, str]) -> dict[str, list[str]]:
    """``EXTRA=DIST[:SPEC]`` arguments as each extra's ``Requires-Dist`` values, by extra."""
    by_extra: dict[str, list[str]] = {}
    for item in specs:
        extra, sep, spec = item.partition("=")
        if not sep or not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", extra) or not spec:
            raise SystemExit(f"build_wheel: --extra-requires {item!r} is not EXTRA=DIST[:SPEC]")
        by_extra.setdefault(extra, []).append(spec)
    return {
        extra: [
            requirement(spec, locked)
            for spec in sorted(by_extra[extra], key=lambda s: normalize(s.partition(":")[0]))
        ]
        for extra in sorted(by_extra)
    }


def metadata(
    args: argparse.Namespace, requires: list[str], optional: dict[str, list[str]] | None = None
) -> str:
    """The ``METADATA`` file (core metadata 2.1); ``optional``: each extra's requirements."""
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {args.name}",
        f"Version: {args.version}",
        f"Summary: {args.summary}",
        "Requires-Python: >=3.11",
    ]
    lines += [f"Requires-Dist: {req}" for req in requires]
    for extra, reqs in (optional or {}).items():
        lines.append(f"Provides-Extra: {extra}")
        lines += [f'Requires-Dist: {req}; extra == "{extra}"' for req in reqs]
    return "\n".join(lines) + "\n"


def wheel_file() -> str:
    """The ``WHEEL`` file of a pure-Python wheel."""
    return (
        "Wheel-Version: 1.0\n"
        "Generator: conveyor-build-wheel 1.0\n"
        "Root-Is-Purelib: true\n"
        "Tag: py3-none-any\n"
    )


def entry_points(scripts: list[str]) -> str:
    """``entry_points.txt`` with the console scripts (``name=module:function``)."""
    if not scripts:
        return ""
    return "[console_scripts]\n" + "".join(f"{s.replace('=', ' = ', 1)}\n" for s in sorted(scripts))


def record_line(path: str, data: bytes) -> str:
    """One ``RECORD`` row: path, urlsafe-base64 sha256 without padding, size."""
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def build(args: argparse.Namespace) -> None:
    """Writes the wheel ``args.out``."""
    locked = pins(Path(args.lock).read_text())
    by_name = sorted(args.requires, key=lambda spec: normalize(spec.partition(":")[0]))
    requires = [requirement(spec, locked) for spec in by_name]
    optional = extras(args.extra_requires, locked)
    files: dict[str, bytes] = {}
    for item in args.file:
        archive_path, _, source = item.partition("=")
        if archive_path in files:
            raise SystemExit(f"build_wheel: {archive_path} given twice")
        files[archive_path] = Path(source).read_bytes()
    stem = f"{args.name.replace('-', '_')}-{args.version}"
    info = f"{stem}.dist-info"
    files[f"{info}/METADATA"] = metadata(args, requires, optional).encode()
    files[f"{info}/WHEEL"] = wheel_file().encode()
    if args.entry_point:
        files[f"{info}/entry_points.txt"] = entry_points(args.entry_point).encode()
    record = [record_line(path, files[path]) for path in sorted(files)]
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    # dist-info last (pip reads it either way; RECORD last of all, as the spec recommends).
    order = sorted(p for p in files if not p.startswith(info)) + [
        f"{info}/{n}" for n in ("METADATA", "WHEEL", "entry_points.txt", "RECORD")
    ]
    with zipfile.ZipFile(args.out, "w") as archive:
        for path in order:
            if path not in files:
                continue
            entry = zipfile.ZipInfo(path, date_time=_EPOCH)
            entry.external_attr = 0o100644 << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, files[path], compresslevel=9)


def parse(argv: list[str]) -> argparse.Namespace:
    """The command line (see the module doc)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], fromfile_prefix_chars="@")
    parser.add_argument("--out", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--version", required=True)
    parser.add_argument("--summary", required=True)
    parser.add_argument("--lock", required=True)
    parser.add_argument("--requires", action="append", default=[])
    parser.add_argument("--extra-requires", action="append", default=[])
    parser.add_argument("--entry-point", action="append", default=[])
    parser.add_argument("--file", action="append", default=[])
    return parser.parse_args(argv)


if __name__ == "__main__":
    build(parse(sys.argv[1:]))
