"""Deterministic bytecode for the Python files of a layer (PEP 552 unchecked-hash ``.pyc``)."""

from __future__ import annotations

import importlib.util
import marshal
import posixpath
import sys

from tools.oci.errors import SpecError
from tools.oci.tree import Kind, LayerTree

__all__ = ["compile_tree", "pyc_bytes", "pyc_path"]

# Flags word of a hash-based pyc (PEP 552): bit 0 set = hash-based, bit 1 clear = unchecked.
_UNCHECKED_HASH_FLAGS = (0b01).to_bytes(4, "little")


def pyc_path(source_path: str, cache_tag: str) -> str:
    """Returns where the interpreter looks for the bytecode of ``source_path``."""
    directory, name = posixpath.split(source_path)
    stem = name[: -len(".py")]
    return posixpath.join(directory, "__pycache__", f"{stem}.{cache_tag}.pyc")


def pyc_bytes(source: bytes, display_path: str) -> bytes:
    """Compiles ``source`` to an unchecked-hash pyc whose tracebacks name ``display_path``.

    The result depends only on the source, the path and the interpreter version when the
    process runs with ``PYTHONHASHSEED=0`` (set constants are ordered by hash).
    """
    code = compile(source, display_path, "exec", dont_inherit=True, optimize=0)
    return (
        importlib.util.MAGIC_NUMBER
        + _UNCHECKED_HASH_FLAGS
        + importlib.util.source_hash(source)
        + marshal.dumps(code)
    )


def compile_tree(tree: LayerTree, cache_tag: str) -> int:
    """Adds a pyc beside every ``.py`` file of ``tree``; returns how many were compiled.

    Files that do not compile (templates, Python 2 test data) are skipped, as compileall does.
    """
    if cache_tag != sys.implementation.cache_tag:
        raise SpecError(
            f"bytecode for {cache_tag} cannot be made by {sys.implementation.cache_tag}: "
            "run the tool on the image's Python"
        )
    compiled = 0
    for entry in tree.entries():
        if entry.kind is not Kind.FILE or not entry.path.endswith(".py"):
            continue
        target = pyc_path(entry.path, cache_tag)
        if target in tree:
            continue
        try:
            data = pyc_bytes(entry.data, "/" + entry.path)
        except (SyntaxError, ValueError):
            continue
        tree.add_file(target, data, 0o644)
        compiled += 1
    return compiled
