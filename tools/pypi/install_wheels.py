"""Unpacks locked wheels into one site-packages and writes a BUILD file with a py_library each.

Run by the `pypi_packages` repository rule on the hermetic interpreter:

    python3 install_wheels.py WHEEL_DIR REPO_DIR

Every wheel in WHEEL_DIR is unpacked into REPO_DIR/site-packages (its `*.data/purelib|platlib`
into site-packages too, `*.data/scripts` into REPO_DIR/bin), byte-compiled, and described in
REPO_DIR/BUILD.bazel as `py_library(name = <normalized distribution name>)` whose deps come from
`Requires-Dist` with environment markers evaluated for the target (CPython 3.11.2 on Linux
x86_64). Dependency cycles are merged into one library that each member aliases.
"""

from __future__ import annotations

import compileall
import email.parser
import py_compile
import re
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

TARGET_ENVIRONMENT = {
    "implementation_name": "cpython",
    "implementation_version": "3.11.2",
    "os_name": "posix",
    "platform_machine": "x86_64",
    "platform_python_implementation": "CPython",
    "platform_system": "Linux",
    "python_full_version": "3.11.2",
    "python_version": "3.11",
    "sys_platform": "linux",
    "extra": "",
}

# File names Bazel 4 cannot take as labels.
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_./+\-=,@~]")


def normalize(name: str) -> str:
    """PEP 503 name, with '_' as separator so it is a valid target name."""
    return re.sub(r"[-_.]+", "_", name).lower()


@dataclass
class Distribution:
    name: str
    files: list[str] = field(default_factory=list)
    requires: list[str] = field(default_factory=list)


def unpack(wheel: Path, repo: Path) -> Distribution:
    site = repo / "site-packages"
    dist = Distribution(name="")
    with zipfile.ZipFile(wheel) as archive:
        for info in archive.infolist():
            if info.is_dir():
                continue
            parts = info.filename.split("/")
            if parts[0].endswith(".data") and len(parts) > 2:
                kind, rest = parts[1], parts[2:]
                if kind in ("purelib", "platlib"):
                    rel = "site-packages/" + "/".join(rest)
                elif kind == "scripts":
                    rel = "bin/" + "/".join(rest)
                else:  # headers, data: not needed at run time
                    continue
            else:
                rel = "site-packages/" + info.filename
            dest = repo / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(archive.read(info))
            mode = (info.external_attr >> 16) & 0o777
            if mode & 0o111 or rel.startswith("bin/"):
                dest.chmod(0o755)
            dist.files.append(rel)
            if parts[0].endswith(".dist-info") and parts[-1] == "METADATA":
                metadata = email.parser.BytesParser().parsebytes(archive.read(info))
                dist.name = normalize(str(metadata["Name"]))
                dist.requires = [str(r) for r in metadata.get_all("Requires-Dist") or []]
    if not dist.name:
        raise SystemExit(f"{wheel.name}: no METADATA in the wheel")
    del site
    return dist


def direct_deps(dist: Distribution, known: set[str]) -> list[str]:
    from packaging.requirements import Requirement  # from the unpacked lock itself

    deps = set()
    for text in dist.requires:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate(TARGET_ENVIRONMENT):
            continue
        name = normalize(req.name)
        if name in known and name != dist.name:
            deps.add(name)
    return sorted(deps)


def strongly_connected(graph: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; components in discovery order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    result: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, child_pos = work.pop()
            if child_pos == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            children = graph[node]
            if child_pos < len(children):
                work.append((node, child_pos + 1))
                child = children[child_pos]
                if child not in index:
                    work.append((child, 0))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                result.append(sorted(component))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return result


def starlark_list(items: list[str], indent: str = "        ") -> str:
    if not items:
        return "[]"
    body = "".join(f'{indent}"{item}",\n' for item in items)
    return "[\n" + body + indent[:-4] + "]"


def library(name: str, dists: list[Distribution], deps: list[str]) -> str:
    files = sorted(f for d in dists for f in d.files if not _UNSAFE_NAME.search(f))
    srcs = [f for f in files if f.endswith(".py")]
    data = [f for f in files if not f.endswith(".py")]
    data += [f"{name}_pycache"] if srcs else []
    return (
        f"py_library(\n"
        f'    name = "{name}",\n'
        f"    srcs = {starlark_list(srcs)},\n"
        f"    data = {starlark_list(data)},\n"
        f'    imports = ["site-packages"],\n'
        f"    deps = {starlark_list([':' + d for d in deps])},\n"
        f")\n\n"
        + (
            f"filegroup(\n"
            f'    name = "{name}_pycache",\n'
            f"    srcs = glob({starlark_list(pycache_globs(srcs))}),\n"
            f")\n\n"
            if srcs
            else ""
        )
    )


def pycache_globs(srcs: list[str]) -> list[str]:
    dirs = sorted({src.rsplit("/", 1)[0] for src in srcs})
    return [f"{d}/__pycache__/*.pyc" for d in dirs]


def main() -> None:
    wheel_dir, repo = Path(sys.argv[1]), Path(sys.argv[2])
    dists = [unpack(wheel, repo) for wheel in sorted(wheel_dir.glob("*.whl"))]
    sys.path.insert(0, str(repo / "site-packages"))
    by_name = {d.name: d for d in dists}
    graph = {d.name: direct_deps(d, set(by_name)) for d in dists}
    compileall.compile_dir(
        repo / "site-packages",
        quiet=2,
        workers=0,
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )
    out = [
        "# Generated by //tools/pypi:install_wheels.py from requirements.lock. Do not edit.\n",
        'package(default_visibility = ["//visibility:public"])\n\n',
        'exports_files(glob(["bin/*"]))\n\n',
    ]
    for component in strongly_connected(graph):
        deps = sorted({d for m in component for d in graph[m]} - set(component))
        if len(component) == 1:
            out.append(library(component[0], [by_name[component[0]]], deps))
            continue
        merged = "_cycle_" + "_".join(component)
        out.append(library(merged, [by_name[m] for m in component], deps))
        for member in component:
            out.append(f'alias(name = "{member}", actual = ":{merged}")\n\n')
    (repo / "BUILD.bazel").write_text("".join(out))


if __name__ == "__main__":
    main()
