"""Mypy stubs (``*_pb2_grpc.pyi``) for grpcio-tools' service modules.

``--grpc_python_out`` writes ``x_pb2_grpc.py`` (a client stub class, a servicer base class and
an ``add_*_to_server`` function per service) without types; mypy, strict, would type-check
the generated code itself. This tool writes the matching ``x_pb2_grpc.pyi`` from the schema's
descriptors: every method typed with the request and response messages of its ``.proto``. A
servicer method may be synchronous or ``async`` (``grpc.aio``), so its declared result is the
response or an awaitable of it. ``grpc`` has no types, so channels, servers and contexts are
``Any``.

It runs after protoc (``py_proto_library(grpc = True)``), on the descriptor set protoc wrote,
rather than as protoc's plugin: protoc starts a plugin with its own environment, in which the
hermetic interpreter's launcher does not run.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from google.protobuf.descriptor_pb2 import DescriptorProto, FileDescriptorProto, FileDescriptorSet

_HEADER = '''"""Types of {module} (written by //tools/proto:grpc_pyi from {proto})."""

from collections.abc import AsyncIterator, Awaitable, Iterator
from typing import Any

'''


def module_of(proto: str) -> str:
    """The Python module protoc's Python generator makes of a ``.proto`` path."""
    return proto.removesuffix(".proto").replace("/", ".").replace("-", "_") + "_pb2"


def _messages(prefix: str, messages: Iterable[DescriptorProto]) -> Iterable[str]:
    """The dotted path of every message within its package, nested ones included (it is
    also the message's attribute path in its Python module)."""
    for message in messages:
        path = f"{prefix}{message.name}"
        yield path
        yield from _messages(f"{path}.", message.nested_type)


def type_index(files: Iterable[FileDescriptorProto]) -> dict[str, tuple[str, str]]:
    """``.package.Message`` -> (Python module, attribute path) for every message of ``files``."""
    index: dict[str, tuple[str, str]] = {}
    for file in files:
        package = f".{file.package}." if file.package else "."
        for path in _messages("", file.message_type):
            index[package + path] = (module_of(file.name), path)
    return index


def stub(file: FileDescriptorProto, index: dict[str, tuple[str, str]]) -> str:
    """The ``.pyi`` text for the service module of ``file``."""
    aliases: dict[str, str] = {}

    def typed(full_name: str) -> str:
        module, path = index[full_name]
        alias = aliases.setdefault(module, f"_m{len(aliases)}")
        return f"{alias}.{path}"

    body: list[str] = []
    for service in file.service:
        name = service.name
        body += ["", f"class {name}Stub:", "    def __init__(self, channel: Any) -> None: ..."]
        for method in service.method:
            body.append(f"    {method.name}: Any")
        body += ["", f"class {name}Servicer:"]
        if not service.method:
            body.append("    pass")
        for method in service.method:
            request, response = typed(method.input_type), typed(method.output_type)
            if method.client_streaming:
                arg = f"request_iterator: Iterator[{request}] | AsyncIterator[{request}]"
            else:
                arg = f"request: {request}"
            if method.server_streaming:
                result = f"Iterator[{response}] | AsyncIterator[{response}]"
            else:
                result = f"{response} | Awaitable[{response}]"
            body.append(f"    def {method.name}(self, {arg}, context: Any) -> {result}: ...")
        body += [
            "",
            f"def add_{name}Servicer_to_server(servicer: {name}Servicer, server: Any) -> None: ...",
        ]
    imports = []
    for module, alias in aliases.items():
        package, _, leaf = module.rpartition(".")
        imports.append(
            f"from {package} import {leaf} as {alias}" if package else f"import {leaf} as {alias}"
        )
    module = module_of(file.name) + "_grpc"
    header = _HEADER.format(module=module, proto=file.name)
    return header + "\n".join(imports) + "\n" + "\n".join(body) + "\n"


def generate(files: Sequence[FileDescriptorProto], to_generate: Iterable[str]) -> dict[str, str]:
    """The stubs (path -> text) for the files named in ``to_generate`` that declare a service;
    ``files`` holds them and every file they import."""
    index = type_index(files)
    wanted = set(to_generate)
    return {
        file.name.removesuffix(".proto") + "_pb2_grpc.pyi": stub(file, index)
        for file in files
        if file.name in wanted and file.service
    }


def main(argv: Sequence[str]) -> int:
    """``grpc_pyi DESCRIPTOR_SET OUT_DIR FILE.proto...``: write the stubs of the files under
    ``OUT_DIR``, from a descriptor set that holds them and their imports
    (``protoc --include_imports --descriptor_set_out``)."""
    if len(argv) < 3:
        print(main.__doc__, file=sys.stderr)
        return 2
    descriptor_set, out_dir, *protos = argv
    files = FileDescriptorSet.FromString(Path(descriptor_set).read_bytes()).file
    for name, text in generate(files, protos).items():
        target = Path(out_dir) / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
