"""`py_proto_library`: protobuf schemas compiled by Bazel into Python modules.

protoc comes from grpcio-tools in requirements.lock and runs on the hermetic interpreter.
A schema at `proto/task.proto` becomes `from proto import task_pb2` (with a `.pyi` stub for
mypy); the path of the `.proto` relative to the workspace root is the Python module path.
"""

_PROTOC = "//tools/proto:protoc"

def py_proto_library(name, srcs, deps = [], visibility = None, testonly = False):
    """Compiles `srcs` (.proto files of this package) into a py_library.

    Args:
      name: the py_library's name, by convention `<schema>_py_pb2`.
      srcs: the .proto files.
      deps: other py_proto_library targets whose schemas these import
        (`import "proto/task.proto";`).
      visibility: visibility of the library and of the `<name>_srcs` filegroup.
      testonly: as for any rule.
    """
    outs = []
    for src in srcs:
        if not src.endswith(".proto"):
            fail("py_proto_library %s: %s is not a .proto file" % (name, src))
        outs += [src[:-len(".proto")] + "_pb2.py", src[:-len(".proto")] + "_pb2.pyi"]
    native.filegroup(
        name = name + "_srcs",
        srcs = srcs + [dep + "_srcs" for dep in deps],
        visibility = visibility,
        testonly = testonly,
    )
    native.genrule(
        name = name + "_protoc",
        srcs = srcs + [name + "_srcs"],
        outs = outs,
        tools = [_PROTOC],
        cmd = " ".join([
            "$(execpath %s)" % _PROTOC,
            "--proto_path=.",
            "--python_out=$(BINDIR)",
            "--pyi_out=$(BINDIR)",
        ] + ["$(execpath %s)" % src for src in srcs]),
        testonly = testonly,
    )
    native.py_library(
        name = name,
        srcs = [out for out in outs if out.endswith(".py")],
        data = [out for out in outs if out.endswith(".pyi")],
        deps = deps + ["@pypi//:protobuf"],
        visibility = visibility,
        testonly = testonly,
    )
