"""Tensors of a ``ModelInferRequest`` in, a ``ModelInferResponse`` out.

An input's data is in its ``contents``, in the repeated field of its datatype's family
(``CONTENTS_FIELDS``), or in the request's ``raw_input_contents`` (one entry per input, in the
order of the inputs; the binary layout of ``api.oip.binary``), never both; a declared tensor's
raw bytes are kept as they came (``api.oip.tensors``). The response answers
in ``raw_output_contents`` when the request sent raw inputs, as Triton does (tritonclient reads
only raw outputs, except BYTES), else in each output's ``contents``. The checks themselves
(datatype, shape, element count, the model's fields) are the REST API's
(``api.oip.infer``, ``api.oip.tensors``), so both transports refuse the same requests.
"""

from collections.abc import Collection, Mapping, Sequence
from typing import Any, Final

from google.protobuf.message import Message

from api.oip.binary import decode_elements
from api.oip.datatypes import BYTES, check_integer
from api.oip.exceptions import InvalidInferRequest
from api.oip.execute import Outcome
from api.oip.infer import WantedOutput, check_input, input_tensor
from api.oip.tensors import Tensor
from proto.oip import grpc_service_pb2 as pb

__all__ = ["CONTENTS_FIELDS", "infer_response", "parameters_of", "read_inputs"]

CONTENTS_FIELDS: Final[dict[str, str]] = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    BYTES: "bytes_contents",
}
"""The ``InferTensorContents`` field of each datatype; FP16 has none (raw bytes only)."""

# Datatypes narrower than their contents field: each value is checked against the datatype.
_NARROW: Final = frozenset({"INT8", "INT16", "UINT8", "UINT16"})


def parameters_of(parameters: Mapping[str, pb.InferParameter]) -> dict[str, Any]:
    """A parameters map as plain values (bool, int, str or float; None for an unset one)."""
    values: dict[str, Any] = {}
    for name, parameter in parameters.items():
        choice = parameter.WhichOneof("parameter_choice")
        values[name] = getattr(parameter, choice) if choice is not None else None
    return values


def read_inputs(
    request: pb.ModelInferRequest, declared: Collection[str] = frozenset()
) -> tuple[list[Tensor], bool]:
    """The request's inputs as tensors, and whether they came as raw bytes; the raw bytes of
    the inputs named in ``declared`` (the model's declared tensors) are kept undecoded."""
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise InvalidInferRequest(
            f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} inputs: "
            "give one per input, in the order of the inputs",
            field="raw_input_contents",
        )
    tensors: list[Tensor] = []
    seen: set[str] = set()
    for index, given in enumerate(request.inputs):
        name, datatype = given.name, given.datatype
        check_input(name, datatype, parameters_of(given.parameters), seen)
        if raw:
            if given.HasField("contents"):
                raise InvalidInferRequest(
                    f"input {name!r} has contents while the request has raw_input_contents: "
                    "give every input's data one way",
                    field=name,
                )
            if name in declared:
                tensors.append(input_tensor(name, datatype, list(given.shape), [], raw[index]))
                continue
            data = decode_elements(datatype, raw[index], name)
        else:
            data = _contents(given, name, datatype)
        tensors.append(input_tensor(name, datatype, list(given.shape), data))
    return tensors, bool(raw)


def _contents(given: pb.ModelInferRequest.InferInputTensor, name: str, datatype: str) -> list[Any]:
    field = CONTENTS_FIELDS.get(datatype)
    if field is None:
        raise InvalidInferRequest(
            f"input {name!r} is {datatype}, which has no contents field: send it in "
            "raw_input_contents",
            field=name,
        )
    for descriptor, _ in given.contents.ListFields():
        if descriptor.name != field:
            raise InvalidInferRequest(
                f"input {name!r} is {datatype}: its data goes in contents.{field} "
                f"(or raw_input_contents), not in contents.{descriptor.name}",
                field=name,
            )
    data: list[Any] = list(getattr(given.contents, field))
    if datatype in _NARROW:
        for value in data:
            check_integer(datatype, value, name)
    return data


def infer_response(
    *,
    model_name: str,
    model_version: str,
    request_id: str,
    outcome: Outcome,
    wanted: Sequence[WantedOutput],
    raw: bool,
) -> pb.ModelInferResponse:
    """The response: the wanted outputs in their order, raw when ``raw`` (else in
    ``contents``), each with the leading batch dimension of 1 when the inputs had one (a
    declared tensor keeps its own shape)."""
    response = pb.ModelInferResponse(
        model_name=model_name, model_version=model_version, id=request_id
    )
    produced = {tensor.name: tensor for tensor in outcome.outputs}
    tensors = [produced[w.name] for w in wanted if w.name in produced]  # unset oneofs: none
    # Raw for all or for none: raw_output_contents pairs with the outputs by position.
    raw = raw or any(tensor.datatype not in CONTENTS_FIELDS for tensor in tensors)
    for tensor in tensors:
        shape = [1, *tensor.shape] if outcome.batched and tensor.raw is None else list(tensor.shape)
        output = response.outputs.add(name=tensor.name, datatype=tensor.datatype, shape=shape)
        if raw:
            response.raw_output_contents.append(tensor.binary())
        else:
            _fill(output.contents, tensor)
    return response


def _fill(contents: Message, tensor: Tensor) -> None:
    values = tensor.elements()
    if tensor.datatype == BYTES:
        values = [v.encode() if isinstance(v, str) else v for v in values]
    getattr(contents, CONTENTS_FIELDS[tensor.datatype]).extend(values)
