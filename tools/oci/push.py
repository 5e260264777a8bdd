"""``bazel run //api:push``: pushes an image tarball to a registry and prints ``repo@sha256:...``.

Usage::

    python -m tools.oci.push --tarball api/image.tar --name conveyor/api \\
        --repository registry.example.com/conveyor/api --tag 1.2.0

or, for several images, ``--registry registry.example.com`` and one ``--name`` per
``--tarball`` (each goes to ``<registry>/<name>``). Environment: ``CONVEYOR_PUSH_REPOSITORY``,
``CONVEYOR_PUSH_REGISTRY``, ``CONVEYOR_PUSH_TAG``, ``CONVEYOR_PUSH_INSECURE=1``; credentials as
in :mod:`tools.oci.credentials`. Blobs the repository already has are not sent again.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tarfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tools.oci.credentials import Repository, check_tag, find_credentials
from tools.oci.distribution import RegistryClient, sha256_digest
from tools.oci.errors import ImageRefError, OciError, SpecError
from tools.oci.layout import MANIFEST_MEDIA_TYPE

__all__ = ["LayoutImage", "PushResult", "main", "open_layout", "push_image"]

_TRUE = ("1", "true", "yes")


@dataclass(frozen=True)
class LayoutImage:
    """The one image of an OCI layout tarball: its manifest and a way to read its blobs."""

    manifest: bytes
    media_type: str
    tag: str
    """The name the image was built with (``conveyor/api:dev``)."""
    _tar: tarfile.TarFile

    @property
    def digest(self) -> str:
        """The manifest's digest."""
        return sha256_digest(self.manifest)

    def blob_digests(self) -> list[str]:
        """The config's digest, then each layer's, as the manifest lists them."""
        manifest = json.loads(self.manifest)
        return [manifest["config"]["digest"], *(layer["digest"] for layer in manifest["layers"])]

    def blob(self, digest: str) -> bytes:
        """The bytes of blob ``digest``, checked against it."""
        data = _member(self._tar, "blobs/sha256/" + digest.removeprefix("sha256:"))
        if sha256_digest(data) != digest:
            raise SpecError(f"blob {digest} of the tarball does not match its digest")
        return data


def _member(tar: tarfile.TarFile, name: str) -> bytes:
    try:
        member = tar.extractfile(name)
    except KeyError as e:
        raise SpecError(f"{name} missing from the image tarball") from e
    if member is None:
        raise SpecError(f"{name} in the image tarball is not a file")
    return member.read()


@contextmanager
def open_layout(tarball: Path) -> Iterator[LayoutImage]:
    """Opens an OCI layout tarball written by ``tools.oci.build`` (one manifest in its index)."""
    try:
        tar = tarfile.open(tarball)  # noqa: SIM115 - closed below, once the caller is done
    except (OSError, tarfile.TarError) as e:
        raise SpecError(f"cannot read {tarball}: {e}") from e
    with tar:
        index = json.loads(_member(tar, "index.json"))
        manifests = index.get("manifests", [])
        if len(manifests) != 1:
            raise SpecError(f"{tarball}: expected one manifest in index.json, got {len(manifests)}")
        entry = manifests[0]
        digest = entry["digest"]
        manifest = _member(tar, "blobs/sha256/" + digest.removeprefix("sha256:"))
        if sha256_digest(manifest) != digest:
            raise SpecError(f"{tarball}: manifest does not match its digest {digest}")
        annotations = entry.get("annotations", {})
        yield LayoutImage(
            manifest=manifest,
            media_type=entry.get("mediaType", MANIFEST_MEDIA_TYPE),
            tag=annotations.get("io.containerd.image.name", ""),
            _tar=tar,
        )


@dataclass(frozen=True)
class PushResult:
    """What a push did."""

    repository: Repository
    tag: str
    digest: str
    uploaded: int
    present: int
    uploaded_bytes: int

    @property
    def reference(self) -> str:
        """``host/name@sha256:...``: the reference a deployment should pin."""
        return self.repository.with_digest(self.digest)


def push_image(image: LayoutImage, client: RegistryClient, tag: str) -> PushResult:
    """Uploads the blobs ``client``'s repository lacks, then ``PUT``s the manifest as ``tag``."""
    uploaded = present = uploaded_bytes = 0
    for digest in image.blob_digests():
        if client.blob_exists(digest):
            present += 1
            continue
        data = image.blob(digest)
        client.upload_blob(digest, data)
        uploaded += 1
        uploaded_bytes += len(data)
    digest = client.put_manifest(check_tag(tag), image.manifest, image.media_type)
    return PushResult(client.repository, tag, digest, uploaded, present, uploaded_bytes)


def _targets(args: argparse.Namespace, environ: Mapping[str, str]) -> list[Repository]:
    repository = args.repository or environ.get("CONVEYOR_PUSH_REPOSITORY")
    registry = args.registry or environ.get("CONVEYOR_PUSH_REGISTRY")
    if repository and args.repository is None and len(args.tarball) > 1:
        repository = None  # one repository for several images makes no sense: use the registry
    if repository:
        if len(args.tarball) != 1:
            raise ImageRefError("--repository names one image's repository: use --registry")
        return [Repository.parse(repository)]
    if not registry:
        raise ImageRefError(
            "say where to push: --repository registry.example.com/conveyor/api "
            "(or CONVEYOR_PUSH_REPOSITORY), or --registry registry.example.com "
            "(or CONVEYOR_PUSH_REGISTRY)"
        )
    return [Repository.parse(f"{registry.rstrip('/')}/{name}") for name in args.name]


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] = os.environ) -> int:
    """Entry point; returns the process exit status."""
    parser = argparse.ArgumentParser(description="Push OCI image tarballs to a registry.")
    parser.add_argument("--tarball", type=Path, action="append", required=True)
    parser.add_argument(
        "--name", action="append", required=True, help="repository path per tarball (conveyor/api)"
    )
    parser.add_argument("--repository", help="host/path of the repository (one image)")
    parser.add_argument("--registry", help="registry host; images go to <registry>/<name>")
    parser.add_argument(
        "--tag", help="tag to push (default: CONVEYOR_PUSH_TAG, else the local tag)"
    )
    parser.add_argument(
        "--insecure", action="store_true", help="plain HTTP (loopback registries always use it)"
    )
    args = parser.parse_args(argv)
    if len(args.tarball) != len(args.name):
        parser.error("give one --name per --tarball")
    insecure = args.insecure or environ.get("CONVEYOR_PUSH_INSECURE", "").lower() in _TRUE
    try:
        targets = _targets(args, environ)
        for tarball, repository in zip(args.tarball, targets, strict=True):
            credentials = find_credentials(repository.host, environ)
            client = RegistryClient(repository, credentials, insecure=insecure)
            with open_layout(tarball) as image:
                tag = args.tag or environ.get("CONVEYOR_PUSH_TAG") or image.tag.rpartition(":")[2]
                result = push_image(image, client, tag)
            print(
                f"push: {repository.with_tag(tag)}: {result.uploaded} blobs uploaded "
                f"({result.uploaded_bytes} bytes), {result.present} already there",
                file=sys.stderr,
            )
            print(result.reference)
    except OciError as e:
        print(f"push: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
