"""A model's protobuf messages as named tensors (the Open Inference Protocol's view of them).

The mapping, derived from the message descriptors alone (so a new model needs no code):

- Every top-level field is one tensor named after the field.
- A scalar field is a tensor of shape ``[1]``; a repeated field is 1-D, ``[-1]``.
- Element datatypes: double ``FP64``, float ``FP32``, int32/sint32/sfixed32 ``INT32``,
  int64/sint64/sfixed64 ``INT64``, uint32/fixed32 ``UINT32``, uint64/fixed64 ``UINT64``,
  bool ``BOOL``, string and bytes ``BYTES``, an enum ``BYTES`` holding the value's name.
- A map field ``m`` is two 1-D tensors of equal length: ``m`` (the values) and ``m_keys``
  (the keys), in ascending key order in responses.
- A singular message field ``m`` is flattened: its fields become tensors ``m.<field>``, by the
  same rules, recursively.
- A ``conveyor.v1.Tensor`` field with the ``(conveyor.v1.tensor)`` option (``proto/tensor.proto``)
  is one *declared* tensor: the option's datatype, its dims as the shape (``-1`` any size). Its
  elements travel as the field's ``raw`` bytes, the binary tensor format, and its shape is the
  tensor's own (``TensorSpec.declared``; see ``fit``). A Tensor field without the option is an
  ordinary message field.
- No tensor form (an ``UnmappableField`` naming the field): repeated message fields, maps whose
  values are messages, groups, message types that contain themselves, and a
  ``(conveyor.v1.tensor)`` option on anything but a singular Tensor field or naming an unknown
  datatype.
- Inputs convert where no information is lost: any float datatype (FP16, FP32, FP64) for a
  float or double field, any integer datatype for an integer field (each value must fit the
  field). An input left out leaves its field at its default; an unknown input is an error; two
  inputs of one ``oneof`` are an error.
- A response leaves out the tensors of a ``oneof`` member (proto3 ``optional`` included) that is
  not set, and a declared tensor the model left unset.

Batching (one task runs one request message) is decided in ``fit``: see its docstring.
"""

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any, Final

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from api.oip.binary import decode_elements, encode_elements, raw_problem
from api.oip.datatypes import (
    BOOL,
    BYTES,
    FLOAT_MAXIMA,
    FLOATS,
    INTEGER_RANGES,
    INTEGERS,
    check_float,
    check_integer,
    is_datatype,
)
from api.oip.exceptions import InvalidInferRequest, UnmappableField
from conveyor.descriptors import tensor_option
from proto import tensor_pb2

__all__ = ["Tensor", "TensorMapping", "TensorSpec", "fit", "mapping_for"]

MAP_KEYS_SUFFIX: Final = "_keys"
"""A map field ``m`` is tensors ``m`` (values) and ``m_keys`` (keys)."""

_F = FieldDescriptor
_DATATYPES: Final[dict[int, str]] = {
    _F.TYPE_DOUBLE: "FP64",
    _F.TYPE_FLOAT: "FP32",
    _F.TYPE_INT32: "INT32",
    _F.TYPE_SINT32: "INT32",
    _F.TYPE_SFIXED32: "INT32",
    _F.TYPE_INT64: "INT64",
    _F.TYPE_SINT64: "INT64",
    _F.TYPE_SFIXED64: "INT64",
    _F.TYPE_UINT32: "UINT32",
    _F.TYPE_FIXED32: "UINT32",
    _F.TYPE_UINT64: "UINT64",
    _F.TYPE_FIXED64: "UINT64",
    _F.TYPE_BOOL: BOOL,
    _F.TYPE_STRING: BYTES,
    _F.TYPE_BYTES: BYTES,
    _F.TYPE_ENUM: BYTES,
}


@dataclass(frozen=True)
class TensorSpec:
    """A tensor as model metadata declares it; ``-1`` is a dimension of any size."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    declared: bool = False
    """A ``conveyor.v1.Tensor`` field with the ``(conveyor.v1.tensor)`` option: ``shape`` is its
    dims, a tensor's own shape (a leading ``-1`` is the model's batch dimension), and its
    elements travel as bytes."""

    def metadata(self) -> dict[str, Any]:
        """The ``$metadata_tensor`` JSON object."""
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


@dataclass(frozen=True)
class Tensor:
    """A tensor with its elements flat, in row-major order: in ``data``, or as bytes in ``raw``.

    ``raw`` holds the elements in the binary tensor format (``api.oip.binary``), undecoded,
    and ``data`` is then empty: a declared tensor's bytes (``TensorSpec.declared``) as they
    came, so they pass through the gateway without a copy per element. A tensor with ``raw``
    has a shape of its own, which never gains or loses a batch dimension.
    """

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: list[Any]
    raw: bytes | None = None

    def elements(self) -> list[Any]:
        """The elements as a flat list (decoded from ``raw`` when it is set)."""
        if self.raw is None:
            return self.data
        return decode_elements(self.datatype, self.raw, self.name)

    def binary(self) -> bytes:
        """The elements in the binary tensor format (``raw`` itself when it is set)."""
        if self.raw is not None:
            return self.raw
        return encode_elements(self.datatype, self.data)


class _Kind(Enum):
    SCALAR = "scalar"
    REPEATED = "repeated"
    MAP_VALUES = "map values"
    MAP_KEYS = "map keys"
    DECLARED = "declared tensor"


@dataclass(frozen=True)
class _Leaf:
    spec: TensorSpec
    kind: _Kind
    # The fields from the top-level message down to the one holding the data.
    path: tuple[FieldDescriptor, ...]
    # The field whose type the elements have (a map entry's key or value field for maps).
    element: FieldDescriptor

    @property
    def field(self) -> FieldDescriptor:
        return self.path[-1]


def accepted_datatypes(datatype: str) -> frozenset[str]:
    """The input datatypes that convert losslessly to a field of ``datatype``."""
    if datatype in FLOATS:
        return FLOATS
    if datatype in INTEGERS:
        return INTEGERS
    return frozenset({datatype})


class TensorMapping:
    """How one message type maps to named tensors, both ways."""

    def __init__(self, descriptor: Descriptor) -> None:
        self.descriptor = descriptor
        self._leaves: dict[str, _Leaf] = {}
        for leaf in _leaves(descriptor, (), "", (descriptor.full_name,)):
            if leaf.spec.name in self._leaves:
                raise UnmappableField(
                    f"{descriptor.full_name}: two fields map to the tensor {leaf.spec.name!r}",
                    field=leaf.spec.name,
                )
            self._leaves[leaf.spec.name] = leaf

    @property
    def specs(self) -> list[TensorSpec]:
        """The tensors of this message type, in field order."""
        return [leaf.spec for leaf in self._leaves.values()]

    def spec(self, name: str) -> TensorSpec | None:
        """The tensor named ``name``, if this message type has it."""
        leaf = self._leaves.get(name)
        return leaf.spec if leaf is not None else None

    @functools.cached_property
    def declared(self) -> frozenset[str]:
        """The names of the declared tensors (``TensorSpec.declared``): their inputs are kept
        as bytes."""
        return frozenset(n for n, leaf in self._leaves.items() if leaf.kind is _Kind.DECLARED)

    def to_message(self, message_class: type[Message], tensors: Mapping[str, Tensor]) -> Message:
        """Build a message from tensors already ``fit`` to this mapping's specs."""
        unknown = sorted(set(tensors) - set(self._leaves))
        if unknown:
            raise InvalidInferRequest(
                f"unknown input {unknown[0]!r}; the inputs are: {', '.join(self._leaves)}",
                field=unknown[0],
            )
        _check_oneofs([self._leaves[name] for name in tensors])
        message = message_class()
        for name, tensor in tensors.items():
            leaf = self._leaves[name]
            if leaf.kind is _Kind.MAP_KEYS:
                continue
            if leaf.kind is _Kind.MAP_VALUES:
                keys = tensors.get(name + MAP_KEYS_SUFFIX)
                if keys is None:
                    raise InvalidInferRequest(
                        f"map input {name!r} needs its keys in input {name + MAP_KEYS_SUFFIX!r}",
                        field=name + MAP_KEYS_SUFFIX,
                    )
                self._set_map(message, leaf, keys, tensor)
            elif leaf.kind is _Kind.DECLARED:
                target = getattr(_holder_for_writing(message, leaf.path), leaf.field.name)
                target.shape.extend(tensor.shape)
                target.raw = tensor.binary()
            else:
                self._set(message, leaf, tensor)
        for name, leaf in self._leaves.items():
            values_name = name.removesuffix(MAP_KEYS_SUFFIX)
            if leaf.kind is _Kind.MAP_KEYS and name in tensors and values_name not in tensors:
                raise InvalidInferRequest(
                    f"map input {values_name!r} is missing (its keys {name!r} were given)",
                    field=values_name,
                )
        return message

    def from_message(self, message: Message) -> list[Tensor]:
        """The tensors of ``message``, in field order (unset ``oneof`` members left out)."""
        tensors: list[Tensor] = []
        for leaf in self._leaves.values():
            holder = _holder(message, leaf.path)
            if holder is None:
                continue
            if leaf.kind is _Kind.DECLARED:
                if holder.HasField(leaf.field.name):
                    value = getattr(holder, leaf.field.name)
                    shape = tuple(value.shape)
                    tensors.append(Tensor(leaf.spec.name, leaf.spec.datatype, shape, [], value.raw))
                continue
            value = getattr(holder, leaf.field.name)
            if leaf.kind is _Kind.SCALAR:
                data = [_from_field(leaf.element, value)]
            elif leaf.kind is _Kind.REPEATED:
                data = (
                    list(value)
                    if leaf.element.enum_type is None
                    else [_from_field(leaf.element, item) for item in value]
                )
            else:
                keys = sorted(value)
                items = keys if leaf.kind is _Kind.MAP_KEYS else [value[key] for key in keys]
                data = [_from_field(leaf.element, item) for item in items]
            shape = (1,) if leaf.kind is _Kind.SCALAR else (len(data),)
            tensors.append(Tensor(leaf.spec.name, leaf.spec.datatype, shape, data))
        return tensors

    def _set(self, message: Message, leaf: _Leaf, tensor: Tensor) -> None:
        holder = _holder_for_writing(message, leaf.path)
        values = _to_fields(leaf.element, tensor.data, tensor.name)
        try:
            if leaf.kind is _Kind.SCALAR:
                setattr(holder, leaf.field.name, values[0])
            else:
                getattr(holder, leaf.field.name).extend(values)
        except (TypeError, ValueError) as e:
            raise InvalidInferRequest(f"input {tensor.name!r}: {e}", field=tensor.name) from e

    def _set_map(self, message: Message, leaf: _Leaf, keys: Tensor, values: Tensor) -> None:
        if len(keys.data) != len(values.data):
            raise InvalidInferRequest(
                f"map input {values.name!r} has {len(values.data)} values but "
                f"{keys.name!r} has {len(keys.data)} keys",
                field=values.name,
            )
        key_field = self._leaves[keys.name].element
        converted = [_to_field(key_field, key, keys.name) for key in keys.data]
        if len(set(converted)) != len(converted):
            raise InvalidInferRequest(f"map input {keys.name!r} repeats a key", field=keys.name)
        target = getattr(_holder_for_writing(message, leaf.path), leaf.field.name)
        for key, value in zip(converted, values.data, strict=True):
            target[key] = _to_field(leaf.element, value, values.name)


@functools.lru_cache(maxsize=256)
def mapping_for(descriptor: Descriptor) -> TensorMapping:
    """The (cached) mapping of a message type; raise ``UnmappableField``."""
    return TensorMapping(descriptor)


def fit(spec: TensorSpec, tensor: Tensor, model: str) -> tuple[Tensor, bool]:
    """Check an input against its spec; return it with the spec's datatype and shape, and
    whether it carried a batch dimension.

    A task runs one request message, so a batch holds one item: a tensor may have the spec's
    shape (a scalar also ``[]``), or a leading batch dimension of 1 in front of it (``[1, 4]``
    for ``[-1]``, ``[1, 1]`` for ``[1]``). A larger batch is refused with a message saying so.
    Datatypes convert as ``accepted_datatypes`` says.

    A declared tensor (``spec.declared``) is the model's own: it takes exactly its datatype and
    any shape of the spec's rank whose dimensions match (``-1`` any size, a batch of any size
    along a leading ``-1`` included); its bytes (``raw``) must be as many elements as the shape
    holds. It comes back unchanged, never with a batch dimension.
    """
    if spec.declared:
        return _fit_declared(spec, tensor, model), False
    if tensor.datatype not in accepted_datatypes(spec.datatype):
        also = sorted(accepted_datatypes(spec.datatype) - {spec.datatype})
        hint = f" ({', '.join(also)} also accepted)" if also else ""
        raise InvalidInferRequest(
            f"input {tensor.name!r} has datatype {tensor.datatype}; "
            f"model {model!r} expects {spec.datatype}{hint}",
            field=tensor.name,
        )
    shape = tensor.shape
    batched = len(shape) == len(spec.shape) + 1
    if batched and shape[0] != 1:
        raise InvalidInferRequest(
            f"input {tensor.name!r} has a batch of {shape[0]} (shape {list(shape)}); model "
            f"{model!r} runs one request per call: send a batch of 1 or one request per item",
            field=tensor.name,
        )
    item = shape[1:] if batched else shape
    scalar = spec.shape == (1,)
    if not (item == (1,) or (scalar and item == ()) or (not scalar and len(item) == 1)):
        raise InvalidInferRequest(
            f"input {tensor.name!r} has shape {list(shape)}; model {model!r} expects "
            f"{list(spec.shape)}, optionally after a batch dimension of 1",
            field=tensor.name,
        )
    return replace(tensor, datatype=spec.datatype, shape=(len(tensor.data),)), batched


def _fit_declared(spec: TensorSpec, tensor: Tensor, model: str) -> Tensor:
    if tensor.datatype != spec.datatype:
        raise InvalidInferRequest(
            f"input {tensor.name!r} has datatype {tensor.datatype}; "
            f"model {model!r} expects {spec.datatype}",
            field=tensor.name,
        )
    shape = tensor.shape
    if len(shape) != len(spec.shape) or any(
        want not in (-1, have) for have, want in zip(shape, spec.shape, strict=True)
    ):
        raise InvalidInferRequest(
            f"input {tensor.name!r} has shape {list(shape)}; model {model!r} expects "
            f"{list(spec.shape)} (-1: any size)",
            field=tensor.name,
        )
    if tensor.raw is not None:
        problem = raw_problem(tensor.datatype, shape, tensor.raw)
        if problem is not None:
            raise InvalidInferRequest(f"input {tensor.name!r}: {problem}", field=tensor.name)
    return tensor


def _leaves(
    descriptor: Descriptor,
    path: tuple[FieldDescriptor, ...],
    prefix: str,
    seen: tuple[str, ...],
) -> list[_Leaf]:
    leaves: list[_Leaf] = []
    for field in descriptor.fields:
        name = prefix + field.name
        where = (*path, field)
        if field.type == _F.TYPE_GROUP:
            raise _unmappable(descriptor, name, "a group")
        option = tensor_option(field)
        if option is not None:
            spec = _declared_spec(descriptor, field, name, option)
            leaves.append(_Leaf(spec, _Kind.DECLARED, where, field))
        elif field.message_type is not None and field.message_type.GetOptions().map_entry:
            key, value = (
                field.message_type.fields_by_name["key"],
                field.message_type.fields_by_name["value"],
            )
            if value.message_type is not None:
                raise _unmappable(descriptor, name, "a map whose values are messages")
            leaves.append(
                _Leaf(
                    TensorSpec(name, _DATATYPES[value.type], (-1,)), _Kind.MAP_VALUES, where, value
                )
            )
            keys_name = name + MAP_KEYS_SUFFIX
            leaves.append(
                _Leaf(
                    TensorSpec(keys_name, _DATATYPES[key.type], (-1,)), _Kind.MAP_KEYS, where, key
                )
            )
        elif field.message_type is not None:
            if field.is_repeated:
                raise _unmappable(descriptor, name, "a repeated message")
            if field.message_type.full_name in seen:
                raise _unmappable(descriptor, name, "a message that contains itself")
            nested_seen = (*seen, field.message_type.full_name)
            leaves += _leaves(field.message_type, where, name + ".", nested_seen)
        else:
            kind = _Kind.REPEATED if field.is_repeated else _Kind.SCALAR
            shape = (-1,) if field.is_repeated else (1,)
            leaves.append(
                _Leaf(TensorSpec(name, _DATATYPES[field.type], shape), kind, where, field)
            )
    return leaves


_TENSOR_MESSAGE: Final = tensor_pb2.Tensor.DESCRIPTOR.full_name


def _declared_spec(
    descriptor: Descriptor, field: FieldDescriptor, name: str, option: tensor_pb2.TensorSpec
) -> TensorSpec:
    if field.message_type is None or field.message_type.full_name != _TENSOR_MESSAGE:
        raise _unmappable(descriptor, name, f"not a {_TENSOR_MESSAGE} but has the tensor option")
    if field.is_repeated:
        raise _unmappable(descriptor, name, f"a repeated {_TENSOR_MESSAGE}")
    if not is_datatype(option.datatype):
        raise _unmappable(descriptor, name, f"a tensor of unknown datatype {option.datatype!r}")
    if any(dim < -1 for dim in option.dims):
        raise _unmappable(descriptor, name, f"a tensor of dims {list(option.dims)}")
    return TensorSpec(name, option.datatype, tuple(option.dims), declared=True)


def _unmappable(descriptor: Descriptor, name: str, what: str) -> UnmappableField:
    return UnmappableField(
        f"field {name!r} of {descriptor.full_name} is {what}, which has no tensor form "
        "in the Open Inference Protocol mapping",
        field=name,
    )


def _check_oneofs(leaves: Sequence[_Leaf]) -> None:
    members: dict[str, str] = {}
    for leaf in leaves:
        for field in leaf.path:
            oneof = field.containing_oneof
            if oneof is None:
                continue
            other = members.setdefault(oneof.full_name, field.name)
            if other != field.name:
                raise InvalidInferRequest(
                    f"inputs for {other!r} and {field.name!r} were both given, but they are "
                    f"members of one oneof ({oneof.name!r}): give one",
                    field=leaf.spec.name,
                )


def _holder(message: Message, path: tuple[FieldDescriptor, ...]) -> Message | None:
    """The message holding the last field of ``path``; None when a oneof member on the way
    (or the field itself) is not set."""
    holder = message
    for index, field in enumerate(path):
        if field.containing_oneof is not None and not holder.HasField(field.name):
            return None
        if index < len(path) - 1:
            holder = getattr(holder, field.name)
    return holder


def _holder_for_writing(message: Message, path: tuple[FieldDescriptor, ...]) -> Message:
    holder = message
    for field in path[:-1]:
        holder = getattr(holder, field.name)
    return holder


def _from_field(field: FieldDescriptor, value: Any) -> Any:
    if field.enum_type is not None:
        known = field.enum_type.values_by_number.get(value)
        return known.name if known is not None else str(value)
    return value


def _to_fields(field: FieldDescriptor, data: Sequence[Any], tensor: str) -> list[Any]:
    """``_to_field`` of each element; numbers are converted and range-checked in bulk (a big
    tensor is mostly numbers), falling back to each element only to name the one at fault."""
    datatype = _DATATYPES[field.type]
    if field.enum_type is None and data:
        if datatype in FLOATS:
            numbers = list(map(float, data))
            maximum = FLOAT_MAXIMA.get(datatype)
            if maximum is None:
                return numbers
            peak = max(map(abs, numbers))  # NaN or inf: checked one by one below
            if peak <= maximum:
                return numbers
        elif datatype in INTEGERS:
            low, high = INTEGER_RANGES[datatype]
            if low <= min(data) and max(data) <= high:
                return list(data)
    return [_to_field(field, value, tensor) for value in data]


def _to_field(field: FieldDescriptor, value: Any, tensor: str) -> Any:
    """Convert one tensor element to the Python value protobuf takes for ``field``."""
    datatype = _DATATYPES[field.type]
    if field.type == _F.TYPE_STRING:
        if isinstance(value, bytes):
            try:
                return value.decode()
            except UnicodeDecodeError as e:
                raise InvalidInferRequest(
                    f"input {tensor!r} holds bytes that are not UTF-8 text ({e.reason})",
                    field=tensor,
                ) from e
        return value
    if field.type == _F.TYPE_BYTES:
        return value.encode() if isinstance(value, str) else value
    if field.enum_type is not None:
        name = value.decode(errors="replace") if isinstance(value, bytes) else value
        known = field.enum_type.values_by_name.get(name)
        if known is None:
            names = ", ".join(v.name for v in field.enum_type.values)
            raise InvalidInferRequest(
                f"input {tensor!r}: {name!r} is not one of {names}", field=tensor
            )
        return known.number
    if datatype in INTEGERS:
        check_integer(datatype, value, tensor)
        return value
    if datatype in FLOATS:
        number = float(value)
        if not math.isnan(number):
            check_float(datatype, number, tensor)
        return number
    return bool(value)
