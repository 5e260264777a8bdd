"""Builders of small inputs for the image tool's tests: fake .deb files and image tarballs."""

from __future__ import annotations

import gzip
import io
import json
import lzma
import tarfile
from pathlib import Path
from typing import Any, Literal


def _tar(members: dict[str, bytes | str | None], compression: Literal["gz", "xz"]) -> bytes:
    """A tar of files (bytes), symlinks ("-> target" strings) and directories (None)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.uid = info.gid = 1000
            info.uname = info.gname = "builder"
            info.mtime = 1_700_000_000
            if content is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            elif isinstance(content, str):
                info.type = tarfile.SYMTYPE
                info.linkname = content.removeprefix("-> ")
                tar.addfile(info)
            else:
                info.mode = 0o755 if name.endswith(".so") else 0o644
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    raw = buffer.getvalue()
    return gzip.compress(raw, mtime=0) if compression == "gz" else lzma.compress(raw)


def _ar(members: list[tuple[str, bytes]]) -> bytes:
    out = bytearray(b"!<arch>\n")
    for name, data in members:
        header = (
            f"{name:<16}{'1700000000':<12}{'0':<6}{'0':<6}{'100644':<8}{len(data):<10}`\n"
        ).encode()
        out += header + data
        if len(data) % 2:
            out += b"\n"
    return bytes(out)


def make_deb(path: Path, package: str, files: dict[str, bytes | str | None]) -> Path:
    """Writes a minimal Debian package holding ``files`` (keys like ``./usr/bin/x``)."""
    control = _tar({"./control": f"Package: {package}\nVersion: 1.0\n".encode()}, "gz")
    path.write_bytes(
        _ar(
            [
                ("debian-binary", b"2.0\n"),
                ("control.tar.gz", control),
                ("data.tar.xz", _tar(files, "xz")),
            ]
        )
    )
    return path


def read_layout(tarball: Path) -> dict[str, bytes]:
    """Returns every regular file of an OCI layout tarball by name."""
    with tarfile.open(tarball) as tar:
        return {
            member.name: tar.extractfile(member).read()  # type: ignore[union-attr]
            for member in tar.getmembers()
            if member.isfile()
        }


def layer_members(blob: bytes) -> list[tarfile.TarInfo]:
    """Returns the tar members of a gzip layer blob, in order."""
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        return tar.getmembers()


def blob(files: dict[str, bytes], digest: str) -> bytes:
    """Returns the blob named by ``digest`` from a layout read by ``read_layout``."""
    return files["blobs/sha256/" + digest.removeprefix("sha256:")]


def write_spec(path: Path, spec: dict[str, Any]) -> Path:
    """Writes ``spec`` as JSON and returns its path."""
    path.write_text(json.dumps(spec))
    return path


def make_image_tarball(path: Path, tag: str, layers: list[dict[str, bytes]]) -> Path:
    """Writes an OCI layout tarball of ``tag`` whose layers hold ``layers`` (path -> content)."""
    from tools.oci.layout import assemble, write_layout_tar
    from tools.oci.spec import ImageConfig, ImageSpec, LayerSpec
    from tools.oci.tarlayer import build_layer
    from tools.oci.tree import LayerTree

    built = []
    for files in layers:
        tree = LayerTree()
        for name, content in files.items():
            tree.add_file(name, content)
        built.append(build_layer(tree))
    names = [f"layer{i}" for i in range(len(layers))]
    spec = ImageSpec(
        tag=tag,
        layers=tuple(LayerSpec(name=n) for n in names),
        config=ImageConfig(entrypoint=("/bin/true",), user="65532:65532"),
    )
    write_layout_tar(assemble(spec, built, names), path)
    return path
