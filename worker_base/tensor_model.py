"""Tensor models: a model declared by its named tensors, with no ``.proto`` of its own.

A ``TensorModel`` lists its input and output tensors (``TensorSpec``: name, Open Inference
Protocol datatype, shape with -1 for any size) and implements ``infer`` on numpy arrays. The base
derives the request and response messages from the specs (``conveyor.models.<name>.Request`` and
``.Response``: one ``conveyor.v1.Tensor`` field per tensor, each carrying its spec in the
``(conveyor.v1.tensor)`` field option; docs/protocol.md, "Tensor models"), checks every request
against them, and batches requests along the first dimension when every tensor has a leading -1.

numpy is needed here only: ``worker_base`` imports this module when ``TensorModel`` or
``TensorSpec`` is first used (the worker wheel's ``tensors`` extra).
"""

import base64
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from math import prod
from typing import Any

import numpy as np
import numpy.typing as npt
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError, Message

from conveyor.descriptors import MessageDescriptor
from proto import tensor_pb2
from worker_base.exceptions import InvalidOutput, InvalidRequest
from worker_base.model import Model

__all__ = ["DATATYPES", "TensorModel", "TensorSpec"]

DATATYPES: Mapping[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "BYTES": np.dtype(object),
}
"""Each Open Inference Protocol datatype and the numpy dtype ``infer`` sees (little-endian;
BYTES: an object array of ``bytes``)."""

_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_EXAMPLE_BYTES = 4096
"""The largest example request (raw bytes of all inputs) ``example_request`` gives."""

Arrays = dict[str, npt.NDArray[Any]]


@dataclass(frozen=True)
class TensorSpec:
    """One named tensor: ``datatype`` (a key of ``DATATYPES``) and ``shape`` (-1: any size; a
    leading -1 is the batch dimension). ``name`` is its field's name in the messages, so it is
    an identifier (letters, digits, underscores). Raises ``ValueError`` otherwise."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        if not _FIELD_NAME.fullmatch(self.name):
            raise ValueError(f"tensor name {self.name!r} is not an identifier")
        if self.datatype not in DATATYPES:
            raise ValueError(f"tensor {self.name}: unknown datatype {self.datatype!r}")
        if any(dim < -1 for dim in self.shape):
            raise ValueError(f"tensor {self.name}: dimensions are -1 or at least 0")

    @property
    def batched(self) -> bool:
        """True when the first dimension is the batch dimension (-1)."""
        return bool(self.shape) and self.shape[0] == -1

    def accepts(self, shape: Sequence[int]) -> bool:
        """True when ``shape`` fits this spec (same rank, fixed dimensions equal)."""
        return len(shape) == len(self.shape) and all(
            size >= 0 and dim in (-1, size) for dim, size in zip(self.shape, shape, strict=True)
        )


class _Messages:
    """A tensor model's Request and Response classes, in a pool of their own."""

    def __init__(
        self, model_name: str, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec]
    ):
        package = "conveyor.models." + _package_part(model_name)
        file = descriptor_pb2.FileDescriptorProto(
            name=package.replace(".", "/") + ".proto",
            package=package,
            syntax="proto3",
            dependency=[tensor_pb2.DESCRIPTOR.name],
        )
        for message_name, specs in (("Request", inputs), ("Response", outputs)):
            names = [spec.name for spec in specs]
            if len(set(names)) != len(names):
                raise ValueError(f"{message_name}: tensor names repeat: {names}")
            message = file.message_type.add(name=message_name)
            for number, spec in enumerate(specs, 1):
                field = message.field.add(
                    name=spec.name,
                    number=number,
                    label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
                    type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
                    type_name=".conveyor.v1.Tensor",
                )
                option: tensor_pb2.TensorSpec = _extensions(field.options)[tensor_pb2.tensor]
                option.datatype = spec.datatype
                option.dims.extend(spec.shape)
        pool = descriptor_pool.DescriptorPool()
        for dependency in (descriptor_pb2.DESCRIPTOR, tensor_pb2.DESCRIPTOR):
            proto = descriptor_pb2.FileDescriptorProto()
            dependency.CopyToProto(proto)
            pool.Add(proto)
        pool.Add(file)
        self.request = message_factory.GetMessageClass(
            pool.FindMessageTypeByName(f"{package}.Request")
        )
        self.response = message_factory.GetMessageClass(
            pool.FindMessageTypeByName(f"{package}.Response")
        )


def _extensions(options: descriptor_pb2.FieldOptions) -> Any:
    """``options.Extensions``, untyped: types-protobuf gives a generated extension the type
    ``FieldDescriptor``, not the typed handle its ``Extensions`` is indexed by."""
    return options.Extensions


def _package_part(model_name: str) -> str:
    """``model_name`` as one component of a protobuf package name."""
    part = re.sub(r"[^A-Za-z0-9_]", "_", model_name)
    return part if _FIELD_NAME.fullmatch(part) else f"m_{part}"


class TensorModel(Model):
    """A model declared by its tensors: set ``name``, ``inputs`` and ``outputs``, implement
    ``infer``.

    ``inputs`` and ``outputs`` are class attributes, or set by the constructor (a model that
    learns them from a file): the worker asks for the messages when it is made, and they are
    derived once, from the specs and ``name`` of that moment.

    Batching: when every input and output has a leading -1 (``batching``), ``process_batch``
    concatenates the requests' inputs along the first dimension, calls ``infer`` once per group
    of requests whose other dimensions agree, and splits each output by the requests' rows. An
    invalid request fails alone; when ``infer`` fails on a group, each of its requests runs
    again alone, so the failure is its own. Set ``max_batch_size`` above 1 to get batches.
    """

    inputs: Sequence[TensorSpec] = ()
    outputs: Sequence[TensorSpec] = ()

    async def infer(self, inputs: dict[str, npt.NDArray[Any]]) -> Mapping[str, npt.ArrayLike]:
        """Run the model on ``inputs`` (one array per input spec, by name, shaped and typed as
        its spec says; they may be read-only) and return one array per output spec.

        An output may come as any array-like whose dtype casts to its spec's within the same
        kind (float64 for FP32); BYTES outputs as ``bytes`` or ``str`` (UTF-8) elements. Run
        heavy work off the event loop (``asyncio.to_thread``). Errors as in
        ``Model.process_request``.
        """
        raise NotImplementedError

    def get_request_format(self) -> MessageDescriptor:
        """The derived Request message: one ``conveyor.v1.Tensor`` field per input."""
        return self._messages.request.DESCRIPTOR

    def get_response_format(self) -> MessageDescriptor:
        """The derived Response message: one ``conveyor.v1.Tensor`` field per output."""
        return self._messages.response.DESCRIPTOR

    @property
    def batching(self) -> bool:
        """True when every input and output has the batch dimension (a leading -1)."""
        return bool(self.inputs) and all(s.batched for s in (*self.inputs, *self.outputs))

    @cached_property
    def _messages(self) -> _Messages:
        return _Messages(self.name, self.inputs, self.outputs)

    async def process_request(self, body: bytes) -> Message:
        """Parse and check the request, ``infer``, check and encode the outputs.

        Raises ``InvalidRequest`` naming the tensor for a request that does not match the input
        specs, ``InvalidOutput`` for outputs that do not match the output specs."""
        inputs = self.decode_request(body)
        return self.encode_response(await self.infer(inputs))

    async def process_batch(self, bodies: Sequence[bytes]) -> Sequence[Message | Exception]:
        """One response or exception per body; see the class docstring for how requests are
        stacked (a model that is not ``batching`` runs them one by one)."""
        outcomes: dict[int, Message | Exception] = {}
        groups: dict[tuple[Any, ...], list[tuple[int, Arrays]]] = {}
        for index, body in enumerate(bodies):
            try:
                inputs = self.decode_request(body)
            except InvalidRequest as e:
                outcomes[index] = e
            else:
                groups.setdefault(self._group_key(index, inputs), []).append((index, inputs))
        for group in groups.values():
            outcomes.update(await self._run_group(group))
        return [outcomes[index] for index in range(len(bodies))]

    def _group_key(self, index: int, inputs: Arrays) -> tuple[Any, ...]:
        """Requests with equal keys stack: the same non-batch dimensions and one row count for
        all of their inputs. Any other request is a group of its own."""
        rows = {array.shape[0] for array in inputs.values()}
        if not self.batching or len(rows) != 1:
            return ("alone", index)
        return tuple(array.shape[1:] for array in inputs.values())

    async def _run_group(
        self, group: list[tuple[int, Arrays]]
    ) -> list[tuple[int, Message | Exception]]:
        if len(group) > 1:
            rows = [next(iter(inputs.values())).shape[0] for _, inputs in group]
            stacked = {
                spec.name: np.concatenate([inputs[spec.name] for _, inputs in group])
                for spec in self.inputs
            }
            try:
                parts = self._split(await self.infer(stacked), rows)
                return [
                    (index, self.encode_response(part))
                    for (index, _), part in zip(group, parts, strict=True)
                ]
            except Exception:
                # Which request failed the stacked call is unknown: each runs again alone.
                pass
        results: list[tuple[int, Message | Exception]] = []
        for index, inputs in group:
            try:
                results.append((index, self.encode_response(await self.infer(inputs))))
            except Exception as e:
                results.append((index, e))
        return results

    def _split(self, outputs: Mapping[str, npt.ArrayLike], rows: list[int]) -> list[Arrays]:
        """The outputs of a stacked call, one mapping per request (by its ``rows``)."""
        total = sum(rows)
        bounds = np.cumsum(rows)[:-1]
        parts: list[Arrays] = [{} for _ in rows]
        for spec in self.outputs:
            array = self._output_array(spec, outputs)
            if array.shape[0] != total:
                raise InvalidOutput(
                    f"output {spec.name} has {array.shape[0]} rows for {total} input rows"
                )
            for part, piece in zip(parts, np.split(array, bounds), strict=True):
                part[spec.name] = piece
        return parts

    def decode_request(self, body: bytes) -> Arrays:
        """The request's input arrays, checked against the input specs (``InvalidRequest``
        naming the tensor otherwise)."""
        try:
            request = self._messages.request.FromString(body)
        except DecodeError as e:
            raise InvalidRequest(f"not a {self.name} request message: {e}") from e
        inputs: Arrays = {}
        for spec in self.inputs:
            if not request.HasField(spec.name):
                raise InvalidRequest(f"input tensor {spec.name} is missing", field=spec.name)
            tensor = getattr(request, spec.name)
            inputs[spec.name] = _decode(spec, tuple(tensor.shape), tensor.raw)
        return inputs

    def encode_response(self, outputs: Mapping[str, npt.ArrayLike]) -> Message:
        """The response message of ``outputs``, checked against the output specs
        (``InvalidOutput`` otherwise)."""
        response = self._messages.response()
        for spec in self.outputs:
            array = self._output_array(spec, outputs)
            if not spec.accepts(array.shape):
                raise InvalidOutput(
                    f"output {spec.name} has shape {list(array.shape)}, not {list(spec.shape)}"
                )
            tensor = getattr(response, spec.name)
            tensor.shape.extend(array.shape)
            tensor.raw = _encode(spec, array)
        return response

    def _output_array(
        self, spec: TensorSpec, outputs: Mapping[str, npt.ArrayLike]
    ) -> npt.NDArray[Any]:
        if spec.name not in outputs:
            raise InvalidOutput(f"infer returned no output {spec.name}")
        array = np.asarray(outputs[spec.name])
        if spec.datatype == "BYTES":
            if array.dtype.kind not in "OSU":
                raise InvalidOutput(f"output {spec.name} is {array.dtype}, not BYTES")
            return array
        target = DATATYPES[spec.datatype]
        if array.dtype != target:
            if not np.can_cast(array.dtype, target, casting="same_kind"):
                raise InvalidOutput(f"output {spec.name} is {array.dtype}, not {spec.datatype}")
            array = array.astype(target)
        return array

    def example_request(self) -> dict[str, Any]:
        """Zeros for every input, one row where the size is free (``{}`` when that would take
        more than a few kilobytes: an image's pixels)."""
        example: dict[str, Any] = {}
        for spec in self.inputs:
            shape = [1 if dim == -1 else dim for dim in spec.shape]
            if spec.datatype == "BYTES":
                array: npt.NDArray[Any] = np.full(shape, b"", dtype=object)
            else:
                array = np.zeros(shape, DATATYPES[spec.datatype])
            raw = _encode(spec, array)
            example[spec.name] = {"shape": shape, "raw": raw}
        if sum(len(tensor["raw"]) for tensor in example.values()) > _EXAMPLE_BYTES:
            return {}
        for tensor in example.values():
            tensor["raw"] = base64.b64encode(tensor["raw"]).decode("ascii")
        return example


def _decode(spec: TensorSpec, shape: tuple[int, ...], raw: bytes) -> npt.NDArray[Any]:
    """One input tensor as an array, or ``InvalidRequest`` naming it."""
    if not spec.accepts(shape):
        raise InvalidRequest(
            f"input tensor {spec.name} has shape {list(shape)}, expected {list(spec.shape)}"
            " (-1: any size)",
            field=spec.name,
        )
    count = prod(shape)
    if spec.datatype == "BYTES":
        return _decode_bytes(spec, shape, count, raw)
    dtype = DATATYPES[spec.datatype]
    if len(raw) != count * dtype.itemsize:
        raise InvalidRequest(
            f"input tensor {spec.name} has {len(raw)} bytes of data; shape {list(shape)} of "
            f"{spec.datatype} takes {count * dtype.itemsize}",
            field=spec.name,
        )
    if spec.datatype == "BOOL":
        octets = np.frombuffer(raw, np.uint8)
        if count and int(octets.max()) > 1:
            raise InvalidRequest(
                f"input tensor {spec.name}: BOOL elements are bytes 0 or 1", field=spec.name
            )
    return np.frombuffer(raw, dtype).reshape(shape)


def _decode_bytes(
    spec: TensorSpec, shape: tuple[int, ...], count: int, raw: bytes
) -> npt.NDArray[Any]:
    elements: list[bytes] = []
    offset = 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise InvalidRequest(f"input tensor {spec.name}: a truncated length", field=spec.name)
        size = int.from_bytes(raw[offset : offset + 4], "little")
        offset += 4
        if offset + size > len(raw):
            raise InvalidRequest(
                f"input tensor {spec.name}: element {len(elements)} is truncated", field=spec.name
            )
        elements.append(raw[offset : offset + size])
        offset += size
    if len(elements) != count:
        raise InvalidRequest(
            f"input tensor {spec.name} has {len(elements)} BYTES elements; shape {list(shape)} "
            f"takes {count}",
            field=spec.name,
        )
    array = np.empty(count, dtype=object)
    array[:] = elements
    return array.reshape(shape)


def _encode(spec: TensorSpec, array: npt.NDArray[Any]) -> bytes:
    """``array``'s elements in row-major order as the Tensor message's ``raw``."""
    if spec.datatype != "BYTES":
        return array.tobytes(order="C")
    pieces: list[bytes] = []
    for element in array.reshape(-1).tolist():
        if isinstance(element, str):
            element = element.encode()
        if not isinstance(element, bytes | bytearray):
            raise InvalidOutput(f"output {spec.name} holds a {type(element).__name__}, not bytes")
        pieces += (len(element).to_bytes(4, "little"), bytes(element))
    return b"".join(pieces)
