"""Wire compatibility of ``grpc_service.proto`` with the protocol as tritonclient compiled it.

Every message, enum and method this file declares must exist in tritonclient's own
``service_pb2`` / ``model_config_pb2`` (package ``inference``) with the same names, and every
field with the same number, type, label and message type: what makes clients generated from
Triton's or KServe's ``.proto`` talk to the gateway. (The other way round is not required: the
file declares a subset.) tritonclient's descriptors are read in a child process, since both
files define the same ``inference.*`` names, which one descriptor pool cannot hold twice.
"""

import subprocess
import sys

import pytest
from google.protobuf.descriptor_pb2 import (
    DescriptorProto,
    EnumDescriptorProto,
    FileDescriptorProto,
    FileDescriptorSet,
)

from proto.oip import grpc_service_pb2

_DUMP = """
import sys
from google.protobuf.descriptor_pb2 import FileDescriptorProto, FileDescriptorSet
from tritonclient.grpc import model_config_pb2, service_pb2
files = FileDescriptorSet()
for module in (model_config_pb2, service_pb2):
    module.DESCRIPTOR.CopyToProto(files.file.add())
sys.stdout.buffer.write(files.SerializeToString())
"""


def _messages(prefix: str, messages: list[DescriptorProto]) -> dict[str, DescriptorProto]:
    found: dict[str, DescriptorProto] = {}
    for message in messages:
        name = f"{prefix}.{message.name}"
        found[name] = message
        found.update(_messages(name, list(message.nested_type)))
    return found


def _enums(prefix: str, file: FileDescriptorProto) -> dict[str, EnumDescriptorProto]:
    found = {f"{prefix}.{enum.name}": enum for enum in file.enum_type}
    for name, message in _messages(prefix, list(file.message_type)).items():
        found.update({f"{name}.{enum.name}": enum for enum in message.enum_type})
    return found


@pytest.fixture(scope="module")
def triton() -> list[FileDescriptorProto]:
    dumped = subprocess.run(
        [sys.executable, "-c", _DUMP], check=True, capture_output=True, env=None
    ).stdout
    return list(FileDescriptorSet.FromString(dumped).file)


@pytest.fixture(scope="module")
def ours() -> FileDescriptorProto:
    file = FileDescriptorProto()
    grpc_service_pb2.DESCRIPTOR.CopyToProto(file)
    return file


def test_the_package_and_service_are_the_protocols(
    ours: FileDescriptorProto, triton: list[FileDescriptorProto]
) -> None:
    assert ours.package == "inference"
    (service,) = ours.service
    assert service.name == "GRPCInferenceService"
    theirs = {m.name: m for f in triton for s in f.service for m in s.method}
    for method in service.method:
        assert method.name in theirs, method.name
        other = theirs[method.name]
        assert (method.input_type, method.output_type) == (other.input_type, other.output_type)
        assert (method.client_streaming, method.server_streaming) == (
            other.client_streaming,
            other.server_streaming,
        )
    assert {m.name for m in service.method} == {
        "ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata",
        "ModelInfer", "ModelStreamInfer", "ModelConfig", "ModelStatistics", "RepositoryIndex",
        "RepositoryModelLoad", "RepositoryModelUnload",
    }  # fmt: skip


def test_every_field_matches_tritonclients(
    ours: FileDescriptorProto, triton: list[FileDescriptorProto]
) -> None:
    theirs: dict[str, DescriptorProto] = {}
    for file in triton:
        theirs.update(_messages(f".{file.package}", list(file.message_type)))
    checked = 0
    for name, message in _messages(".inference", list(ours.message_type)).items():
        assert name in theirs, f"{name} is not a message of the protocol"
        their_fields = {f.name: f for f in theirs[name].field}
        for field in message.field:
            other = their_fields.get(field.name)
            assert other is not None, f"{name}.{field.name} is not a field of the protocol"
            mine = (field.number, field.type, field.label, field.type_name)
            assert mine == (other.number, other.type, other.label, other.type_name), (
                f"{name}.{field.name}"
            )
            assert field.HasField("oneof_index") == other.HasField("oneof_index")
            checked += 1
    assert checked > 100


def test_every_enum_value_matches_tritonclients(
    ours: FileDescriptorProto, triton: list[FileDescriptorProto]
) -> None:
    theirs: dict[str, EnumDescriptorProto] = {}
    for file in triton:
        theirs.update(_enums(f".{file.package}", file))
    mine = _enums(".inference", ours)
    assert ".inference.DataType" in mine
    for name, enum in mine.items():
        assert {(v.name, v.number) for v in enum.value} == {
            (v.name, v.number) for v in theirs[name].value
        }
