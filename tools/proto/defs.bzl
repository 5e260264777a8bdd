"""`py_proto_library`: protobuf schemas compiled by Bazel into Python modules.

protoc comes from grpcio-tools in requirements.lock and runs on the hermetic interpreter.
A schema at `proto/task.proto` becomes `from proto import task_pb2` (with a `.pyi` stub for
mypy); the path of the `.proto` relative to the workspace root is the Python module path.
With `grpc = True` the services of the schema become `task_pb2_grpc` too (grpcio-tools'
`--grpc_python_out`: a client stub, a servicer base and `add_*_to_server` per service), with a
`.pyi` stub written by `//tools/proto:grpc_pyi` from the descriptors protoc writes.
"""

_PROTOC = "//tools/proto:protoc"
_GRPC_PYI = "//tools/proto:grpc_pyi"

def py_proto_library(name, srcs, deps = [], grpc = False, visibility = None, testonly = False):
    """Compiles `srcs` (.proto files of this package) into a py_library.

    Args:
      name: the py_library's name, by convention `<schema>_py_pb2`.
      srcs: the .proto files.
      deps: other py_proto_library targets whose schemas these import
        (`import "proto/task.proto";`).
      grpc: also generate the gRPC service modules (`<schema>_pb2_grpc`) and their stubs;
        the library then depends on grpcio.
      visibility: visibility of the library and of the `<name>_srcs` filegroup.
      testonly: as for any rule.
    """
    outs = []
    for src in srcs:
        if not src.endswith(".proto"):
            fail("py_proto_library %s: %s is not a .proto file" % (name, src))
        stem = src[:-len(".proto")]
        outs += [stem + "_pb2.py", stem + "_pb2.pyi"]
        if grpc:
            outs += [stem + "_pb2_grpc.py", stem + "_pb2_grpc.pyi"]
    native.filegroup(
        name = name + "_srcs",
        srcs = srcs + [dep + "_srcs" for dep in deps],
        visibility = visibility,
        testonly = testonly,
    )
    flags = [
        "--proto_path=.",
        "--python_out=$(BINDIR)",
        "--pyi_out=$(BINDIR)",
    ]
    protos = " ".join(["$(execpath %s)" % src for src in srcs])
    cmd = " ".join(["$(execpath %s)" % _PROTOC] + flags) + " " + protos
    if grpc:
        # The stubs come from the descriptors protoc writes (tools/proto/grpc_pyi.py).
        cmd = " ".join([
            "descriptors=$$(mktemp) &&",
            cmd,
            "--grpc_python_out=$(BINDIR)",
            "--include_imports --descriptor_set_out=$$descriptors &&",
            "$(execpath %s) $$descriptors $(BINDIR) %s" % (_GRPC_PYI, protos),
        ])
    native.genrule(
        name = name + "_protoc",
        srcs = srcs + [name + "_srcs"],
        outs = outs,
        tools = [_PROTOC] + ([_GRPC_PYI] if grpc else []),
        cmd = cmd,
        testonly = testonly,
    )
    native.py_library(
        name = name,
        srcs = [out for out in outs if out.endswith(".py")],
        data = [out for out in outs if out.endswith(".pyi")],
        deps = deps + ["@pypi//:protobuf"] + (["@pypi//:grpcio"] if grpc else []),
        visibility = visibility,
        testonly = testonly,
    )
