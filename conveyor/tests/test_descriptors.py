"""Descriptor sets round-trip and describe nested messages."""

from typing import Any

import pytest
from google.protobuf import descriptor_pb2

from conveyor.descriptors import (
    describe_message,
    file_descriptor_set,
    find_message,
    load_pool,
    message_class,
)
from conveyor.errors import SchemaError
from proto import model_b_pb2, task_pb2, tensor_pb2


def test_descriptor_set_rebuilds_a_working_message_class() -> None:
    data = file_descriptor_set(
        model_b_pb2.ModelBRequest.DESCRIPTOR, model_b_pb2.ModelBResponse.DESCRIPTOR
    )
    cls = message_class(load_pool(data), "conveyor.v1.ModelBResponse")
    original = model_b_pb2.ModelBResponse(label="setosa", probabilities={"setosa": 0.75})
    rebuilt = cls.FromString(original.SerializeToString())
    assert rebuilt.SerializeToString() == original.SerializeToString()
    assert rebuilt.label == "setosa"  # type: ignore[attr-defined]


def test_descriptor_set_holds_each_file_once() -> None:
    data = file_descriptor_set(task_pb2.Task.DESCRIPTOR, task_pb2.TaskResult.DESCRIPTOR)
    fds = descriptor_pb2.FileDescriptorSet.FromString(data)
    assert [f.name for f in fds.file] == ["proto/task.proto"]


def test_describe_lists_fields_and_nested_types() -> None:
    described = describe_message(task_pb2.TaskResult.DESCRIPTOR)
    fields = {f["name"]: f for f in described["fields"]}
    assert described["type"] == "conveyor.v1.TaskResult"
    assert fields["response"]["type"] == "bytes"
    assert fields["error"]["message_type"] == "conveyor.v1.TaskError"
    nested = {f["name"]: f for f in fields["error"]["message"]["fields"]}
    assert "MODEL_ERROR" in nested["code"]["enum_values"]


def test_garbage_is_a_schema_error() -> None:
    with pytest.raises(SchemaError):
        load_pool(b"\xff\xff\xff")


def test_missing_type_is_a_schema_error() -> None:
    pool = load_pool(file_descriptor_set(task_pb2.Task.DESCRIPTOR))
    with pytest.raises(SchemaError):
        find_message(pool, "conveyor.v1.Nope")


def test_describe_shows_a_tensor_fields_declared_datatype_and_dims() -> None:
    # A message built by hand, as a worker without a .proto of its own would register it.
    file = descriptor_pb2.FileDescriptorProto(
        name="test/tensors.proto",
        package="test",
        syntax="proto3",
        dependency=[tensor_pb2.DESCRIPTOR.name],
    )
    message = file.message_type.add(name="Request")
    for number, name in enumerate(("x", "plain"), start=1):
        message.field.add(
            name=name,
            number=number,
            type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
            label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
            type_name=".conveyor.v1.Tensor",
        )
    extension: Any = tensor_pb2.tensor  # its stub's type is not an extension's
    option: tensor_pb2.TensorSpec = message.field[0].options.Extensions[extension]
    option.datatype = "FP32"
    option.dims.extend([-1, 4])
    sets = descriptor_pb2.FileDescriptorSet.FromString(
        file_descriptor_set(tensor_pb2.Tensor.DESCRIPTOR)
    )
    sets.file.append(file)
    pool = load_pool(sets.SerializeToString())
    fields = describe_message(find_message(pool, "test.Request"))["fields"]
    assert fields[0]["tensor"] == {"datatype": "FP32", "dims": [-1, 4]}
    assert fields[0]["message_type"] == "conveyor.v1.Tensor"
    assert "tensor" not in fields[1]
