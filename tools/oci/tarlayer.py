"""Deterministic layer tarballs: sorted entries, mtime 0, numeric owners, reproducible gzip."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from dataclasses import dataclass

from tools.oci.tree import Entry, Kind, LayerTree

__all__ = ["Layer", "build_layer", "tar_bytes"]

_TAR_TYPES = {Kind.FILE: tarfile.REGTYPE, Kind.DIR: tarfile.DIRTYPE, Kind.SYMLINK: tarfile.SYMTYPE}


@dataclass(frozen=True)
class Layer:
    """A compressed layer with the digests the manifest and the config need."""

    blob: bytes
    digest: str
    diff_id: str

    @property
    def size(self) -> int:
        """Size of the compressed blob in bytes."""
        return len(self.blob)


def _tarinfo(entry: Entry) -> tarfile.TarInfo:
    info = tarfile.TarInfo(entry.path)
    info.type = _TAR_TYPES[entry.kind]
    info.mode = entry.mode
    info.uid = entry.uid
    info.gid = entry.gid
    info.uname = ""
    info.gname = ""
    info.mtime = 0
    if entry.kind is Kind.FILE:
        info.size = len(entry.data)
    elif entry.kind is Kind.SYMLINK:
        info.linkname = entry.target
    return info


def tar_bytes(tree: LayerTree) -> bytes:
    """Returns the uncompressed tar of ``tree`` (PAX format, entries in path order)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in tree.entries():
            info = _tarinfo(entry)
            tar.addfile(info, io.BytesIO(entry.data) if entry.kind is Kind.FILE else None)
    return buffer.getvalue()


def build_layer(tree: LayerTree, compresslevel: int = 6) -> Layer:
    """Tars and gzips ``tree``; the gzip header has mtime 0 and no file name."""
    raw = tar_bytes(tree)
    compressed = io.BytesIO()
    with gzip.GzipFile(
        filename="", mode="wb", fileobj=compressed, mtime=0, compresslevel=compresslevel
    ) as gz:
        gz.write(raw)
    blob = compressed.getvalue()
    return Layer(
        blob=blob,
        digest="sha256:" + hashlib.sha256(blob).hexdigest(),
        diff_id="sha256:" + hashlib.sha256(raw).hexdigest(),
    )
