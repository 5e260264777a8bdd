"""The OCI image layout tarball: blobs, manifest, index, plus Docker's ``manifest.json``."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.oci.spec import ImageConfig, ImageSpec
from tools.oci.tarlayer import Layer

__all__ = [
    "CONFIG_MEDIA_TYPE",
    "INDEX_MEDIA_TYPE",
    "LAYER_MEDIA_TYPE",
    "MANIFEST_MEDIA_TYPE",
    "Image",
    "assemble",
    "canonical_json",
    "write_layout_tar",
]

MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
_NANOS = 1_000_000_000


def canonical_json(value: Any) -> bytes:
    """JSON with sorted keys and no insignificant whitespace: the bytes that get hashed."""
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Image:
    """An assembled image: its blobs by digest and the digests that name it."""

    tag: str
    config: bytes
    manifest: bytes
    layers: tuple[Layer, ...]

    @property
    def config_digest(self) -> str:
        """Digest of the config blob (Docker's and podman's image ID)."""
        return _digest(self.config)

    @property
    def manifest_digest(self) -> str:
        """Digest of the manifest: the image digest a registry would report."""
        return _digest(self.manifest)


def _container_config(config: ImageConfig) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if config.entrypoint:
        out["Entrypoint"] = list(config.entrypoint)
    if config.cmd:
        out["Cmd"] = list(config.cmd)
    if config.env:
        out["Env"] = [f"{key}={value}" for key, value in config.env]
    if config.user:
        out["User"] = config.user
    if config.workdir:
        out["WorkingDir"] = config.workdir
    if config.exposed_ports:
        out["ExposedPorts"] = {port: {} for port in config.exposed_ports}
    if config.labels:
        out["Labels"] = dict(config.labels)
    if config.stop_signal:
        out["StopSignal"] = config.stop_signal
    if config.healthcheck is not None:
        health = config.healthcheck
        out["Healthcheck"] = {
            "Test": list(health.test),
            "Interval": int(health.interval_seconds * _NANOS),
            "Timeout": int(health.timeout_seconds * _NANOS),
            "StartPeriod": int(health.start_period_seconds * _NANOS),
            "Retries": health.retries,
        }
    return out


def assemble(spec: ImageSpec, layers: Sequence[Layer], layer_names: Sequence[str]) -> Image:
    """Builds the config and manifest blobs for ``layers``."""
    config = {
        "architecture": spec.architecture,
        "os": "linux",
        "created": spec.created,
        "config": _container_config(spec.config),
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": [
            {"created": spec.created, "created_by": f"conveyor tools/oci: {name} layer"}
            for name in layer_names
        ],
    }
    config_blob = canonical_json(config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": {
            "mediaType": CONFIG_MEDIA_TYPE,
            "digest": _digest(config_blob),
            "size": len(config_blob),
        },
        "layers": [
            {"mediaType": LAYER_MEDIA_TYPE, "digest": layer.digest, "size": layer.size}
            for layer in layers
        ],
    }
    return Image(spec.tag, config_blob, canonical_json(manifest), tuple(layers))


def _index(image: Image) -> bytes:
    repository, _, tag = image.tag.rpartition(":")
    annotations = {
        "io.containerd.image.name": image.tag,
        "org.opencontainers.image.ref.name": tag if repository else image.tag,
    }
    return canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": INDEX_MEDIA_TYPE,
            "manifests": [
                {
                    "mediaType": MANIFEST_MEDIA_TYPE,
                    "digest": image.manifest_digest,
                    "size": len(image.manifest),
                    "annotations": annotations,
                }
            ],
        }
    )


def _blob_path(digest: str) -> str:
    return "blobs/sha256/" + digest.removeprefix("sha256:")


def _docker_manifest(image: Image) -> bytes:
    return canonical_json(
        [
            {
                "Config": _blob_path(image.config_digest),
                "RepoTags": [image.tag],
                "Layers": [_blob_path(layer.digest) for layer in image.layers],
            }
        ]
    )


def _add(tar: tarfile.TarFile, name: str, data: bytes | None) -> None:
    info = tarfile.TarInfo(name)
    info.mtime = 0
    info.uname = info.gname = ""
    if data is None:
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        tar.addfile(info)
        return
    info.mode = 0o644
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_layout_tar(image: Image, out: Path) -> None:
    """Writes ``image`` as an OCI layout tarball that ``docker load`` and ``podman load`` read."""
    blobs: dict[str, bytes] = {image.config_digest: image.config}
    blobs[image.manifest_digest] = image.manifest
    for layer in image.layers:
        blobs[layer.digest] = layer.blob
    files: dict[str, bytes | None] = {
        "blobs": None,
        "blobs/sha256": None,
        "oci-layout": canonical_json({"imageLayoutVersion": "1.0.0"}),
        "index.json": _index(image),
        "manifest.json": _docker_manifest(image),
    }
    for digest, blob in blobs.items():
        files[_blob_path(digest)] = blob
    with tarfile.open(out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            _add(tar, name, files[name])
