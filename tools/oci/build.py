"""CLI: ``python -m tools.oci.build --spec image.json --out image.tar [--digest digest.txt]``."""

from __future__ import annotations

import argparse
import os
import stat
import sys
from collections.abc import Sequence
from pathlib import Path

from tools.oci.deb import add_deb
from tools.oci.errors import OciError, SpecError
from tools.oci.layout import Image, assemble, write_layout_tar
from tools.oci.pyc import compile_tree
from tools.oci.rootfs import add_rootfs_basics
from tools.oci.spec import ImageSpec, LayerSpec, load_spec
from tools.oci.tarlayer import Layer, build_layer
from tools.oci.tree import LayerTree
from tools.oci.wheel import add_wheel

__all__ = ["build_image", "layer_tree", "main"]


def _file_mode(path: Path) -> int:
    return 0o755 if os.stat(path).st_mode & stat.S_IXUSR else 0o644


def layer_tree(layer: LayerSpec, cache_tag: str) -> LayerTree:
    """Collects the entries of one layer: debs, wheels, files, symlinks, directories, generated
    files."""
    tree = LayerTree()
    for deb in layer.debs:
        add_deb(tree, deb, layer.excludes)
    for wheel in layer.wheels:
        assert layer.wheel_target is not None  # load_spec refuses wheels without one
        add_wheel(tree, wheel, layer.wheel_target)
    for item in layer.files:
        mode = item.mode if item.mode is not None else _file_mode(item.src)
        tree.add_file(item.dest, item.src.read_bytes(), mode)
    for path, target in layer.symlinks:
        tree.add_symlink(path, target)
    for directory in layer.directories:
        tree.add_dir(directory.path, directory.mode, directory.uid, directory.gid)
    if layer.rootfs is not None:
        add_rootfs_basics(tree, layer.rootfs)
    if layer.compile_python:
        if not cache_tag:
            raise SpecError(f"layer {layer.name} compiles Python but the spec has no cache tag")
        compile_tree(tree, cache_tag)
    return tree


def build_image(spec: ImageSpec) -> Image:
    """Builds every layer of ``spec`` and assembles the image."""
    layers: list[Layer] = [
        build_layer(layer_tree(layer, spec.python_cache_tag)) for layer in spec.layers
    ]
    return assemble(spec, layers, [layer.name for layer in spec.layers])


def _reexec_with_fixed_hash_seed() -> None:
    # Set constants in bytecode are ordered by string hash: a fixed seed makes pyc reproducible.
    if os.environ.get("PYTHONHASHSEED") != "0":
        env = dict(os.environ, PYTHONHASHSEED="0")
        os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the image builder; returns the process exit status."""
    parser = argparse.ArgumentParser(description="Write a deterministic OCI image layout tarball.")
    parser.add_argument("--spec", type=Path, required=True, help="image spec (JSON)")
    parser.add_argument("--out", type=Path, required=True, help="output tarball")
    parser.add_argument("--digest", type=Path, help="write the manifest digest here")
    parser.add_argument("--base", type=Path, help="directory relative inputs resolve against")
    args = parser.parse_args(argv)
    if argv is None:
        _reexec_with_fixed_hash_seed()
    try:
        image = build_image(load_spec(args.spec, args.base))
        write_layout_tar(image, args.out)
    except OciError as e:
        print(f"oci build: {e}", file=sys.stderr)
        return 1
    if args.digest is not None:
        args.digest.write_text(image.manifest_digest + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
