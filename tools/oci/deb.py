"""Reading Debian packages (``ar`` archives) into a layer tree, in pure Python."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from tools.oci.errors import DebFormatError
from tools.oci.tree import LayerTree, normalize

__all__ = ["DEFAULT_EXCLUDES", "add_deb", "ar_members", "control_fields"]

AR_MAGIC = b"!<arch>\n"
AR_HEADER_SIZE = 60

# Paths a runtime image does not need. Copyright files stay (licences travel with the binaries).
DEFAULT_EXCLUDES: tuple[str, ...] = (
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "usr/share/lintian",
    "usr/share/bug",
    "usr/share/menu",
    "etc/init.d",
    "etc/logrotate.d",
    "lib/systemd",
    "usr/lib/systemd",
)


def ar_members(data: bytes) -> Iterator[tuple[str, bytes]]:
    """Yields ``(name, content)`` for each member of an ``ar`` archive."""
    if not data.startswith(AR_MAGIC):
        raise DebFormatError("not an ar archive (bad magic)")
    offset = len(AR_MAGIC)
    while offset + AR_HEADER_SIZE <= len(data):
        header = data[offset : offset + AR_HEADER_SIZE]
        if header[58:60] != b"`\n":
            raise DebFormatError(f"corrupt ar header at offset {offset}")
        name = header[0:16].decode("ascii").strip().rstrip("/")
        try:
            size = int(header[48:58].decode("ascii").strip())
        except ValueError as e:
            raise DebFormatError(f"corrupt ar member size at offset {offset}") from e
        start = offset + AR_HEADER_SIZE
        yield name, data[start : start + size]
        offset = start + size + (size % 2)


def _member_tar(data: bytes, prefix: str) -> tarfile.TarFile:
    for name, content in ar_members(data):
        if name.startswith(prefix):
            if name.endswith(".zst"):
                raise DebFormatError(
                    f"{name}: zstd is not readable by the stdlib (Debian 12 uses xz)"
                )
            try:
                return tarfile.open(fileobj=io.BytesIO(content), mode="r:*")
            except tarfile.TarError as e:
                raise DebFormatError(f"{name}: {e}") from e
    raise DebFormatError(f"no {prefix}* member")


def control_fields(data: bytes) -> tuple[str, bytes]:
    """Returns the package name and the raw ``control`` file of a ``.deb``."""
    with _member_tar(data, "control.tar") as tar:
        for member in tar.getmembers():
            if normalize(member.name) == "control":
                extracted = tar.extractfile(member)
                if extracted is None:
                    break
                control = extracted.read()
                for line in control.decode("utf-8").splitlines():
                    if line.startswith("Package:"):
                        return line.split(":", 1)[1].strip(), control
    raise DebFormatError("control file without a Package field")


def _excluded(path: str, excludes: Iterable[str]) -> bool:
    for prefix in excludes:
        if path == prefix or path.startswith(prefix + "/"):
            return not (path.startswith("usr/share/doc/") and path.endswith("/copyright"))
    return False


def add_deb(tree: LayerTree, deb: Path, excludes: Iterable[str] = DEFAULT_EXCLUDES) -> str:
    """Adds the files of ``deb`` to ``tree`` and returns the package name.

    Owners become root, hard links become copies, absolute symlinks become relative, and the
    control file is recorded under ``/var/lib/dpkg/status.d/<package>`` (as distroless does) so
    scanners can list the packages of the image.
    """
    data = deb.read_bytes()
    excludes = tuple(excludes)
    package, control = control_fields(data)
    contents: dict[str, bytes] = {}
    with _member_tar(data, "data.tar") as tar:
        for member in tar.getmembers():
            path = normalize(member.name)
            if not path or _excluded(path, excludes):
                continue
            if member.isdir():
                tree.add_dir(path, member.mode & 0o7777)
            elif member.issym():
                tree.add_symlink(path, member.linkname)
            elif member.islnk():
                source = normalize(member.linkname)
                if source in contents:
                    tree.add_file(path, contents[source], member.mode & 0o7777)
            elif member.isfile():
                extracted = tar.extractfile(member)
                content = extracted.read() if extracted is not None else b""
                contents[path] = content
                tree.add_file(path, content, member.mode & 0o7777)
    tree.add_file(f"var/lib/dpkg/status.d/{package}", control)
    return package
