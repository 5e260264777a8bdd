"""The locked third-party wheels, offline: rebuilt from what ``@pypi`` unpacked.

``tools/pypi`` downloads the lock's wheels, unpacks them into ``@pypi//:site-packages`` and
deletes the archives. A test that ``pip install``s our wheels into a clean venv without the
network needs those dependencies as wheels again: ``repack`` zips every ``*.dist-info`` found in
the given site-packages directories back into a wheel, from the files its ``RECORD`` lists
(``*.data/scripts`` from the repository's ``bin/``, ``*.data/purelib|platlib`` from
site-packages), with a RECORD rewritten for exactly the files packed. Files the unpacking left
out (headers, data, names Bazel cannot carry) are left out here too.
"""

from __future__ import annotations

import base64
import csv
import email.parser
import hashlib
import io
import zipfile
from pathlib import Path


def _tags(wheel_text: str) -> str:
    """The compressed tag set of a ``WHEEL`` file's ``Tag:`` lines (``py2.py3-none-any``)."""
    tags = [
        line.split(":", 1)[1].strip() for line in wheel_text.splitlines() if line.startswith("Tag:")
    ]
    parts = [t.split("-") for t in tags]
    return "-".join(".".join(sorted({p[i] for p in parts})) for i in range(3))


def _source(site: Path, path: str) -> Path:
    parts = path.split("/")
    if parts[0].endswith(".data") and len(parts) > 2:
        if parts[1] == "scripts":
            return site.parent / "bin" / "/".join(parts[2:])
        return site / "/".join(parts[2:])
    return site / path


def repack_one(site: Path, info: Path, out_dir: Path) -> Path:
    """One wheel from the dist-info directory ``info`` in ``site``."""
    wheel_text = (info / "WHEEL").read_text()
    metadata = email.parser.Parser().parsestr((info / "METADATA").read_text())
    stem = info.name[: -len(".dist-info")]
    out = out_dir / f"{stem}-{_tags(wheel_text)}.whl"
    rows: list[list[str]] = []
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for row in csv.reader(io.StringIO((info / "RECORD").read_text())):
            if not row or row[0].endswith("/RECORD") or row[0].endswith(".pyc"):
                continue
            source = _source(site, row[0])
            if not source.is_file():
                continue
            data = source.read_bytes()
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            archive.writestr(row[0], data)
            rows.append([row[0], f"sha256={digest.decode()}", str(len(data))])
        rows.append([f"{info.name}/RECORD", "", ""])
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerows(rows)
        archive.writestr(f"{info.name}/RECORD", text.getvalue())
    del metadata
    return out


def repack(sites: list[Path], out_dir: Path) -> list[Path]:
    """Every distribution of ``sites`` as a wheel in ``out_dir``; returns the wheels."""
    out_dir.mkdir(parents=True, exist_ok=True)
    wheels = []
    for site in sites:
        for info in sorted(site.glob("*.dist-info")):
            if (info / "RECORD").is_file() and (info / "WHEEL").is_file():
                wheels.append(repack_one(site, info, out_dir))
    return wheels
