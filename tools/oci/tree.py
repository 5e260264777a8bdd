"""The contents of one layer: a mapping of image paths to files, directories and symlinks."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from enum import Enum

__all__ = ["Entry", "Kind", "LayerTree", "normalize"]


class Kind(Enum):
    """What an entry of a layer is."""

    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"


@dataclass(frozen=True)
class Entry:
    """One path of a layer. ``path`` is relative to ``/`` and normalized (no leading slash)."""

    path: str
    kind: Kind
    mode: int
    data: bytes = b""
    target: str = ""
    uid: int = 0
    gid: int = 0


def normalize(path: str) -> str:
    """Returns ``path`` relative to the image root: ``/usr/./bin/`` -> ``usr/bin``."""
    return posixpath.normpath("/" + path).lstrip("/")


class LayerTree:
    """Entries of one layer by path. Later additions replace earlier ones; parents are implied."""

    def __init__(self) -> None:
        self._entries: dict[str, Entry] = {}

    def __contains__(self, path: str) -> bool:
        return normalize(path) in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, path: str) -> Entry | None:
        """Returns the entry at ``path``, or None."""
        return self._entries.get(normalize(path))

    def add(self, entry: Entry) -> None:
        """Adds ``entry`` (its path is normalized), creating missing parent directories 0755."""
        path = normalize(entry.path)
        if not path:
            return
        self._ensure_parents(path)
        self._entries[path] = Entry(
            path, entry.kind, entry.mode, entry.data, entry.target, entry.uid, entry.gid
        )

    def add_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        """Adds a regular file."""
        self.add(Entry(path, Kind.FILE, mode, data=data))

    def add_dir(self, path: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> None:
        """Adds a directory."""
        self.add(Entry(path, Kind.DIR, mode, uid=uid, gid=gid))

    def add_symlink(self, path: str, target: str) -> None:
        """Adds a symlink. Absolute targets become relative so they never point at host paths."""
        path = normalize(path)
        if target.startswith("/"):
            target = posixpath.relpath(normalize(target) or ".", posixpath.dirname(path) or ".")
        self.add(Entry(path, Kind.SYMLINK, 0o777, target=target))

    def remove(self, path: str) -> None:
        """Removes ``path`` if present (not its children)."""
        self._entries.pop(normalize(path), None)

    def entries(self) -> list[Entry]:
        """Entries sorted by path: the order they are written in."""
        return [self._entries[p] for p in sorted(self._entries)]

    def _ensure_parents(self, path: str) -> None:
        parent = posixpath.dirname(path)
        missing: list[str] = []
        while parent and parent not in self._entries:
            missing.append(parent)
            parent = posixpath.dirname(parent)
        for directory in missing:
            self._entries[directory] = Entry(directory, Kind.DIR, 0o755)
