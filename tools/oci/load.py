"""``bazel run`` side of an image: loads the tarball into Docker or podman and prints the tag.

Usage: ``python -m tools.oci.load --tarball image.tar --tag conveyor/api:dev``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tools.oci.engine import Engine, detect_engine
from tools.oci.errors import EngineError

__all__ = ["image_id", "load_image", "main"]


def image_id(tarball: Path) -> str:
    """Returns the image ID (config digest, hex) of an OCI layout tarball."""
    with tarfile.open(tarball) as tar:

        def read(name: str) -> Any:
            member = tar.extractfile(name)
            if member is None:
                raise EngineError(f"{tarball}: {name} missing")
            return json.load(member)

        manifest_digest = read("index.json")["manifests"][0]["digest"]
        manifest = read("blobs/sha256/" + manifest_digest.removeprefix("sha256:"))
    return str(manifest["config"]["digest"]).removeprefix("sha256:")


def load_image(engine: Engine, tarball: Path, tag: str) -> str:
    """Loads ``tarball`` into ``engine`` and points ``tag`` at it; returns the tag.

    The tag is set by image ID: podman keeps a name on the image that had it before.
    """
    try:
        engine.run("load", "-i", str(tarball))
        engine.run("tag", image_id(tarball), tag)
    except subprocess.CalledProcessError as e:
        raise EngineError(f"{engine.name} could not load {tarball}: {e.stderr.strip()}") from e
    return tag


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    parser = argparse.ArgumentParser(description="Load an OCI image tarball into Docker or podman.")
    parser.add_argument("--tarball", type=Path, action="append", required=True)
    parser.add_argument("--tag", action="append", required=True)
    parser.add_argument("--engine", choices=("auto", "docker", "podman"), default="auto")
    args = parser.parse_args(argv)
    if len(args.tarball) != len(args.tag):
        parser.error("give one --tag per --tarball")
    engine = detect_engine(args.engine)
    if engine is None:
        print(
            "load: no container engine: `docker info` failed and podman is missing "
            "(install it with tools/podman/setup)",
            file=sys.stderr,
        )
        return 2
    try:
        for tarball, tag in zip(args.tarball, args.tag, strict=True):
            print(load_image(engine, tarball, tag))
    except EngineError as e:
        print(f"load: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
