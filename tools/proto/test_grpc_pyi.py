"""The gRPC stub writer: a stub per service file, every method typed with its messages."""

import ast
from pathlib import Path

from google.protobuf.descriptor_pb2 import FileDescriptorProto, FileDescriptorSet

from proto.oip import grpc_service_pb2
from tools.proto.grpc_pyi import generate, main, module_of


def _service_file() -> FileDescriptorProto:
    file = FileDescriptorProto()
    grpc_service_pb2.DESCRIPTOR.CopyToProto(file)
    return file


def test_module_names_follow_the_python_generator() -> None:
    assert module_of("proto/oip/grpc_service.proto") == "proto.oip.grpc_service_pb2"
    assert module_of("a-b.proto") == "a_b_pb2"


def test_the_service_file_gets_a_stub_that_parses() -> None:
    file = _service_file()
    ((name, content),) = generate([file], [file.name]).items()
    assert name == "proto/oip/grpc_service_pb2_grpc.pyi"
    tree = ast.parse(content)
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    assert set(classes) == {"GRPCInferenceServiceStub", "GRPCInferenceServiceServicer"}
    methods = {
        node.name for node in classes["GRPCInferenceServiceServicer"].body
        if isinstance(node, ast.FunctionDef)
    }  # fmt: skip
    assert methods == {m.name for m in grpc_service_pb2.DESCRIPTOR.services_by_name[
        "GRPCInferenceService"].methods}  # fmt: skip
    assert "from proto.oip import grpc_service_pb2 as _m0" in content
    assert (
        "def ModelInfer(self, request: _m0.ModelInferRequest, context: Any) -> "
        "_m0.ModelInferResponse | Awaitable[_m0.ModelInferResponse]: ..."
    ) in content


def test_nested_messages_and_streams_are_typed() -> None:
    file = FileDescriptorProto(name="s.proto", package="p")
    outer = file.message_type.add(name="Outer")
    outer.nested_type.add(name="Inner")
    service = file.service.add(name="S")
    service.method.add(
        name="Chat", input_type=".p.Outer.Inner", output_type=".p.Outer",
        client_streaming=True, server_streaming=True,
    )  # fmt: skip
    content = generate([file], ["s.proto"])["s_pb2_grpc.pyi"]
    ast.parse(content)
    assert "import s_pb2 as _m0" in content
    assert (
        "def Chat(self, request_iterator: Iterator[_m0.Outer.Inner] | "
        "AsyncIterator[_m0.Outer.Inner], context: Any) -> Iterator[_m0.Outer] | "
        "AsyncIterator[_m0.Outer]: ..."
    ) in content


def test_files_without_services_get_nothing() -> None:
    file = FileDescriptorProto(name="m.proto", package="p")
    file.message_type.add(name="M")
    assert generate([file], ["m.proto"]) == {}


def test_main_writes_the_stubs_under_the_output_directory(tmp_path: Path) -> None:
    descriptors = tmp_path / "set.pb"
    descriptors.write_bytes(FileDescriptorSet(file=[_service_file()]).SerializeToString())
    assert main([str(descriptors), str(tmp_path / "out"), "proto/oip/grpc_service.proto"]) == 0
    written = tmp_path / "out" / "proto" / "oip" / "grpc_service_pb2_grpc.pyi"
    assert "class GRPCInferenceServiceServicer:" in written.read_text()
