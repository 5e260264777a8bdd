"""The JSON spec the tool reads: layers in order and the image configuration.

Example::

    {"tag": "conveyor/api:dev", "python_cache_tag": "cpython-311",
     "layers": [{"name": "base", "debs": ["libc6.deb"], "rootfs": {}, "compile_python": true},
                {"name": "app", "files": [{"src": "api/main.py", "dest": "/app/api/main.py"}]},
                {"name": "wheels", "wheels": ["conveyor_worker-0.1.0-py3-none-any.whl"],
                 "wheel_target": {"site_packages": "/usr/local/lib/python3.11/dist-packages",
                                  "scripts": "/usr/local/bin",
                                  "interpreter": "/usr/bin/python3.11"}}],
     "config": {"entrypoint": ["/usr/bin/python3.11"], "cmd": ["-m", "api"],
                "env": {"PYTHONPATH": "/app"}, "user": "65532:65532", "workdir": "/app",
                "exposed_ports": ["8000/tcp"], "labels": {},
                "healthcheck": {"test": ["CMD", "/usr/bin/python3.11", "-c", "..."],
                                "interval_seconds": 10}}}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.oci.deb import DEFAULT_EXCLUDES
from tools.oci.errors import SpecError
from tools.oci.rootfs import User
from tools.oci.wheel import WheelTarget

__all__ = [
    "EPOCH",
    "DirectorySpec",
    "FileSpec",
    "Healthcheck",
    "ImageConfig",
    "ImageSpec",
    "LayerSpec",
    "WheelTarget",
    "load_spec",
]

EPOCH = "1970-01-01T00:00:00Z"


@dataclass(frozen=True)
class FileSpec:
    """A file copied into the image. ``mode`` None keeps the source's executable bit."""

    src: Path
    dest: str
    mode: int | None = None


@dataclass(frozen=True)
class DirectorySpec:
    """A directory created in the image, e.g. a data directory owned by the non-root user."""

    path: str
    mode: int = 0o755
    uid: int = 0
    gid: int = 0


@dataclass(frozen=True)
class LayerSpec:
    """One layer: Debian packages, then wheels, files and symlinks, then generated entries.

    ``wheels`` are installed at ``wheel_target`` (which they need)."""

    name: str
    debs: tuple[Path, ...] = ()
    excludes: tuple[str, ...] = DEFAULT_EXCLUDES
    wheels: tuple[Path, ...] = ()
    wheel_target: WheelTarget | None = None
    files: tuple[FileSpec, ...] = ()
    symlinks: tuple[tuple[str, str], ...] = ()
    directories: tuple[DirectorySpec, ...] = ()
    rootfs: User | None = None
    compile_python: bool = False


@dataclass(frozen=True)
class Healthcheck:
    """Docker's HEALTHCHECK; durations in seconds."""

    test: tuple[str, ...]
    interval_seconds: float = 10.0
    timeout_seconds: float = 5.0
    start_period_seconds: float = 5.0
    retries: int = 3


@dataclass(frozen=True)
class ImageConfig:
    """The runtime configuration recorded in the image config blob."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    user: str = ""
    workdir: str = ""
    exposed_ports: tuple[str, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    healthcheck: Healthcheck | None = None
    stop_signal: str = ""


@dataclass(frozen=True)
class ImageSpec:
    """Everything the tool needs to write one image."""

    tag: str
    layers: tuple[LayerSpec, ...]
    config: ImageConfig = field(default_factory=ImageConfig)
    created: str = EPOCH
    architecture: str = "amd64"
    python_cache_tag: str = ""


def _strings(raw: Any, what: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
        raise SpecError(f"{what} must be a list of strings")
    return tuple(raw)


def _pairs(raw: Any, what: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, dict):
        raise SpecError(f"{what} must be an object of strings")
    return tuple(sorted((str(k), str(v)) for k, v in raw.items()))


def _path(raw: str, base: Path) -> Path:
    path = base / raw
    if not path.exists():
        raise SpecError(f"input not found: {path}")
    return path


def _layer(raw: dict[str, Any], base: Path) -> LayerSpec:
    user = None
    if "rootfs" in raw:
        user = User(**raw["rootfs"])
    files = tuple(
        FileSpec(_path(item["src"], base), item["dest"], item.get("mode"))
        for item in raw.get("files", [])
    )
    wheels = tuple(_path(w, base) for w in _strings(raw.get("wheels", []), "wheels"))
    wheel_target = WheelTarget(**raw["wheel_target"]) if "wheel_target" in raw else None
    if wheels and wheel_target is None:
        raise SpecError(f"layer {raw.get('name', 'layer')} has wheels but no wheel_target")
    return LayerSpec(
        name=str(raw.get("name", "layer")),
        debs=tuple(_path(deb, base) for deb in _strings(raw.get("debs", []), "debs")),
        excludes=_strings(raw["excludes"], "excludes") if "excludes" in raw else DEFAULT_EXCLUDES,
        wheels=wheels,
        wheel_target=wheel_target,
        files=files,
        symlinks=_pairs(raw.get("symlinks", {}), "symlinks"),
        directories=tuple(
            DirectorySpec(str(path), **fields)
            for path, fields in sorted(raw.get("directories", {}).items())
        ),
        rootfs=user,
        compile_python=bool(raw.get("compile_python", False)),
    )


def _config(raw: dict[str, Any]) -> ImageConfig:
    health = raw.get("healthcheck")
    healthcheck = None
    if health is not None:
        healthcheck = Healthcheck(
            test=_strings(health["test"], "healthcheck.test"),
            **{k: v for k, v in health.items() if k != "test"},
        )
    return ImageConfig(
        entrypoint=_strings(raw.get("entrypoint", []), "entrypoint"),
        cmd=_strings(raw.get("cmd", []), "cmd"),
        env=_pairs(raw.get("env", {}), "env"),
        user=str(raw.get("user", "")),
        workdir=str(raw.get("workdir", "")),
        exposed_ports=_strings(raw.get("exposed_ports", []), "exposed_ports"),
        labels=_pairs(raw.get("labels", {}), "labels"),
        healthcheck=healthcheck,
        stop_signal=str(raw.get("stop_signal", "")),
    )


def load_spec(path: Path, base: Path | None = None) -> ImageSpec:
    """Reads the spec at ``path``; relative input paths resolve against ``base`` (default cwd)."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise SpecError(f"cannot read spec {path}: {e}") from e
    base = base if base is not None else Path.cwd()
    try:
        layers = tuple(_layer(layer, base) for layer in raw["layers"])
        return ImageSpec(
            tag=str(raw["tag"]),
            layers=layers,
            config=_config(raw.get("config", {})),
            created=str(raw.get("created", EPOCH)),
            architecture=str(raw.get("architecture", "amd64")),
            python_cache_tag=str(raw.get("python_cache_tag", "")),
        )
    except (KeyError, TypeError) as e:
        raise SpecError(f"malformed spec {path}: {e!r}") from e
