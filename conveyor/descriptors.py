"""Protobuf descriptors <-> FileDescriptorSet bytes, and their readable JSON form.

Workers send the descriptors of their request and response messages to the registry as a
FileDescriptorSet; the registry and the gateway rebuild message classes from it at run time.
The set carries the fields' options, so a tensor field's ``(conveyor.v1.tensor)`` option
(``proto/tensor.proto``) reads the same in a rebuilt pool (``tensor_option``).
"""

from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, FileDescriptor
from google.protobuf.message import DecodeError, Message

from conveyor.errors import SchemaError
from proto import tensor_pb2

if TYPE_CHECKING:
    from google._upb._message import Descriptor as _UpbDescriptor
    from google._upb._message import FileDescriptor as _UpbFileDescriptor

MessageDescriptor: TypeAlias = "Descriptor | _UpbDescriptor"
"""What ``SomeMessage.DESCRIPTOR`` is (pure-Python or upb implementation)."""

_TYPE_NAMES: dict[int, str] = {
    value: name.removeprefix("TYPE_").lower()
    for name, value in vars(FieldDescriptor).items()
    if name.startswith("TYPE_")
}


def _collect(
    file: "FileDescriptor | _UpbFileDescriptor", seen: dict[str, descriptor_pb2.FileDescriptorProto]
) -> None:
    if file.name in seen:
        return
    for dependency in file.dependencies:
        _collect(dependency, seen)
    proto = descriptor_pb2.FileDescriptorProto()
    file.CopyToProto(proto)
    seen[file.name] = proto


def file_descriptor_set(*descriptors: MessageDescriptor) -> bytes:
    """Serialize a FileDescriptorSet holding the files of ``descriptors`` and their imports.

    Files come in dependency order, so a reader can add them to a pool one by one.
    """
    seen: dict[str, descriptor_pb2.FileDescriptorProto] = {}
    for descriptor in descriptors:
        _collect(descriptor.file, seen)
    fds = descriptor_pb2.FileDescriptorSet(file=list(seen.values()))
    return fds.SerializeToString()


def load_pool(fds_bytes: bytes) -> descriptor_pool.DescriptorPool:
    """Build a fresh descriptor pool from serialized FileDescriptorSet bytes."""
    fds = descriptor_pb2.FileDescriptorSet()
    try:
        fds.ParseFromString(fds_bytes)
    except DecodeError as e:
        raise SchemaError(f"not a FileDescriptorSet: {e}") from e
    pool = descriptor_pool.DescriptorPool()
    for file in fds.file:
        try:
            pool.Add(file)
        except (TypeError, ValueError) as e:
            raise SchemaError(f"cannot add {file.name}: {e}") from e
    return pool


def find_message(pool: descriptor_pool.DescriptorPool, full_name: str) -> Descriptor:
    """Return the descriptor of ``full_name`` in ``pool``."""
    try:
        return pool.FindMessageTypeByName(full_name)
    except KeyError as e:
        raise SchemaError(f"message type {full_name!r} is not in the descriptor set") from e


def message_class(pool: descriptor_pool.DescriptorPool, full_name: str) -> type[Message]:
    """Return a generated message class for ``full_name`` in ``pool``."""
    return message_factory.GetMessageClass(find_message(pool, full_name))


class FieldWithOptions(Protocol):
    """A field descriptor (pure-Python or upb implementation), as far as its options go."""

    def GetOptions(self) -> descriptor_pb2.FieldOptions: ...


# The generated stub types the extension as a plain FieldDescriptor, which the typed
# ``HasExtension`` and ``Extensions[...]`` do not take.
_TENSOR_OPTION: Any = tensor_pb2.tensor


def tensor_option(field: FieldWithOptions) -> tensor_pb2.TensorSpec | None:
    """The ``(conveyor.v1.tensor)`` option of ``field`` (its datatype and dims), or None when
    the field has none.

    Reading it needs this module's import of ``proto.tensor_pb2``, which registers the
    extension; a descriptor rebuilt by ``load_pool`` reads it too.
    """
    options = field.GetOptions()
    if not options.HasExtension(_TENSOR_OPTION):
        return None
    spec: tensor_pb2.TensorSpec = options.Extensions[_TENSOR_OPTION]
    return spec


def describe_message(descriptor: MessageDescriptor) -> dict[str, Any]:
    """Return a readable JSON form of a message type: its fields, nested types inline, a tensor
    field's ``(conveyor.v1.tensor)`` option as ``"tensor": {"datatype", "dims"}``."""
    return _describe(descriptor, ())


def _describe(descriptor: MessageDescriptor, stack: tuple[str, ...]) -> dict[str, Any]:
    fields: list[dict[str, Any]] = []
    for field in descriptor.fields:
        entry: dict[str, Any] = {
            "name": field.name,
            "json_name": field.json_name,
            "type": _TYPE_NAMES.get(field.type, str(field.type)),
            "repeated": field.is_repeated,
        }
        if field.message_type is not None:
            entry["message_type"] = field.message_type.full_name
            if field.message_type.full_name not in stack:
                entry["message"] = _describe(field.message_type, (*stack, descriptor.full_name))
        if field.enum_type is not None:
            entry["enum_values"] = [value.name for value in field.enum_type.values]
        spec = tensor_option(field)
        if spec is not None:
            entry["tensor"] = {"datatype": spec.datatype, "dims": list(spec.dims)}
        fields.append(entry)
    return {"type": descriptor.full_name, "fields": fields}
