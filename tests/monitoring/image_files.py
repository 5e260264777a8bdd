"""Files out of an OCI image tarball built by ``//tools/oci`` (its layers applied in order)."""

from __future__ import annotations

import json
import shutil
import tarfile
from collections.abc import Iterable
from pathlib import Path

__all__ = ["extract"]


def extract(tarball: Path, paths: Iterable[str], into: Path) -> dict[str, Path]:
    """Writes each of ``paths`` (absolute image paths) as the image has it to ``into``.

    Later layers win, as in a container. Returns ``{image path: file}``; raises ``KeyError``
    naming a path no layer has.
    """
    wanted = {path.lstrip("/"): path for path in paths}
    found: dict[str, Path] = {}
    with tarfile.open(tarball) as image:
        manifest = image.extractfile("manifest.json")
        assert manifest is not None, "no manifest.json in the image tarball"
        layers = json.load(manifest)[0]["Layers"]
        for number, layer_name in enumerate(layers):
            blob = image.extractfile(layer_name)
            assert blob is not None, layer_name
            with tarfile.open(fileobj=blob, mode="r:*") as layer:
                for member in layer:
                    name = member.name.removeprefix("./")
                    if name not in wanted or not member.isfile():
                        continue
                    source = layer.extractfile(member)
                    assert source is not None, name
                    target = into / str(number) / name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with target.open("wb") as out:
                        shutil.copyfileobj(source, out)
                    target.chmod(member.mode & 0o755)
                    found[wanted[name]] = target
    missing = sorted(set(wanted.values()) - set(found))
    if missing:
        raise KeyError(f"not in {tarball.name}: {', '.join(missing)}")
    return found
