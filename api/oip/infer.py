"""An inference request's body in, tensors out; response tensors in, a response body out.

The JSON objects are the protocol's ``$inference_request`` / ``$inference_response``; the
binary parts follow ``api.oip.binary``. The functions that do not touch JSON (``infer_options``,
``wanted_outputs``, ``input_tensor``, ``request_payload``) serve the gRPC service as well.
Request parameters the gateway reads:

- ``timeout`` and ``priority``, with Triton's meanings (microseconds; 1 the highest priority),
  mapped onto the task's by ``api.oip.parameters.task_parameters``.
- ``binary_data_output`` (bool): answer every output in binary unless an output says otherwise
  with its own ``binary_data``.

Other parameters are ignored, except those of features the gateway does not have, which are
refused: ``sequence_id`` (sequences), ``shared_memory_region`` (shared memory) and
``classification`` (the classification extension).
"""

import json
import math
import uuid
import zlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Final

from fastapi.responses import Response
from google.protobuf.message import Message
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from api.oip.binary import (
    BINARY_CONTENT_TYPE,
    HEADER_LENGTH,
    BinaryReader,
    decode_elements,
    split_body,
)
from api.oip.datatypes import BYTES, check_value, is_datatype
from api.oip.exceptions import InvalidInferRequest
from api.oip.parameters import task_parameters
from api.oip.tensors import Tensor, TensorMapping, TensorSpec, fit

MAX_DECOMPRESSED_BYTES: Final = 64 * 1024 * 1024
"""Largest request body accepted after undoing its ``Content-Encoding``."""

_UNSUPPORTED_PARAMETERS: Final = {
    "sequence_id": "sequences (the sequence extension) are not supported",
    "shared_memory_region": "shared memory is not supported; send the data in the request",
    "classification": "the classification extension is not supported",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="ignore")


class RequestInput(_Strict):
    """``$request_input``."""

    name: StrictStr
    shape: list[Annotated[StrictInt, Field(ge=0)]]
    datatype: StrictStr
    parameters: dict[str, Any] = Field(default_factory=dict)
    data: Any = None


class RequestOutput(_Strict):
    """``$request_output``."""

    name: StrictStr
    parameters: dict[str, Any] = Field(default_factory=dict)


class InferRequest(_Strict):
    """``$inference_request``."""

    id: StrictStr | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    inputs: list[RequestInput]
    outputs: list[RequestOutput] | None = None


@dataclass(frozen=True)
class InferOptions:
    """What the request's parameters ask of the task."""

    request_id: str
    timeout: float
    """Seconds, on Conveyor's scale (see ``api.oip.parameters``)."""
    priority: int
    """0 to 9, higher first (Conveyor's scale)."""
    binary_output: bool


@dataclass(frozen=True)
class WantedOutput:
    """An output to answer, and whether in binary."""

    name: str
    binary: bool


def parse_body(
    body: bytes, header_length: str | None, content_encoding: str | None
) -> tuple[InferRequest, bytes]:
    """Return the request's JSON object and the binary data after it."""
    body = _decompress(body, content_encoding)
    head, binary = split_body(body, header_length)
    try:
        document = json.loads(head)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise InvalidInferRequest(f"the inference request is not JSON: {e}", field="body") from e
    try:
        return InferRequest.model_validate(document), binary
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise InvalidInferRequest(f"{where}: {first['msg']}", field=where) from e


def decode_inputs(
    request: InferRequest, binary: bytes, declared: Collection[str] = frozenset()
) -> list[Tensor]:
    """The request's inputs as tensors, from JSON ``data`` or the binary part; the binary data
    of the inputs named in ``declared`` (the model's declared tensors) is kept as bytes."""
    reader = BinaryReader(binary)
    tensors: list[Tensor] = []
    seen: set[str] = set()
    for given in request.inputs:
        name = given.name
        check_input(name, given.datatype, given.parameters, seen)
        if "binary_data_size" in given.parameters:
            if given.data is not None:
                raise InvalidInferRequest(
                    f"input {name!r} has both data and binary_data_size", field=name
                )
            raw = reader.take(given.parameters["binary_data_size"], name)
            if name in declared:
                tensors.append(input_tensor(name, given.datatype, given.shape, [], raw))
                continue
            data = decode_elements(given.datatype, raw, name)
        elif isinstance(given.data, list):
            data = [check_value(given.datatype, value, name) for value in _flatten(given.data)]
        else:
            raise InvalidInferRequest(
                f"input {name!r} needs data: a JSON array, or binary_data_size", field=name
            )
        tensors.append(input_tensor(name, given.datatype, given.shape, data))
    reader.finish()
    return tensors


def check_input(name: str, datatype: str, parameters: Mapping[str, Any], seen: set[str]) -> None:
    """Refuse an input given twice (``seen`` holds the names so far; ``name`` is added), of
    an unknown datatype, or asking for a feature the gateway does not have."""
    if name in seen:
        raise InvalidInferRequest(f"input {name!r} is given twice", field=name)
    seen.add(name)
    if not is_datatype(datatype):
        raise InvalidInferRequest(
            f"input {name!r} has an unknown datatype {datatype!r}", field=name
        )
    _refuse_unsupported(parameters, f"input {name!r}")


def input_tensor(
    name: str, datatype: str, shape: Sequence[int], data: list[Any], raw: bytes | None = None
) -> Tensor:
    """An input tensor, once its shape is checked against its elements (as many as the
    dimensions' product; no dimension below 0). With ``raw`` (the elements as bytes, for a
    declared tensor) the bytes are checked when the input meets its spec (``fit``)."""
    if any(dimension < 0 for dimension in shape):
        raise InvalidInferRequest(
            f"input {name!r} has shape {list(shape)}: a dimension cannot be negative", field=name
        )
    if raw is not None:
        return Tensor(name, datatype, tuple(shape), [], raw)
    expected = math.prod(shape)
    if len(data) != expected:
        raise InvalidInferRequest(
            f"input {name!r} has shape {list(shape)}, i.e. {expected} elements, "
            f"but {len(data)} were given",
            field=name,
        )
    return Tensor(name, datatype, tuple(shape), data)


def infer_options(
    parameters: Mapping[str, Any],
    request_id: str | None,
    default_timeout: float,
    max_timeout: float,
    deadline: float | None = None,
) -> InferOptions:
    """Read ``timeout``, ``priority`` and ``binary_data_output`` from a request's parameters
    (``deadline``: the seconds the transport allows, see ``task_parameters``); without a
    ``request_id`` the request gets a new one."""
    _refuse_unsupported(parameters, "the request")
    task = task_parameters(
        parameters.get("timeout"),
        parameters.get("priority"),
        default_timeout=default_timeout,
        max_timeout=max_timeout,
        deadline=deadline,
    )
    return InferOptions(
        request_id=request_id or uuid.uuid4().hex,
        timeout=task.seconds,
        priority=task.priority,
        binary_output=_flag(parameters, "binary_data_output", False, "parameters"),
    )


def wanted_outputs(
    outputs: Sequence[RequestOutput] | None, specs: Sequence[TensorSpec], binary_default: bool
) -> list[WantedOutput]:
    """The outputs to answer: those requested (each must exist), else all of them."""
    if outputs is None:
        return [WantedOutput(spec.name, binary_default) for spec in specs]
    names = [spec.name for spec in specs]
    wanted: list[WantedOutput] = []
    for output in outputs:
        if output.name not in names:
            raise InvalidInferRequest(
                f"unknown output {output.name!r}; the outputs are: {', '.join(names)}",
                field=output.name,
            )
        if any(w.name == output.name for w in wanted):
            raise InvalidInferRequest(
                f"output {output.name!r} is requested twice", field=output.name
            )
        _refuse_unsupported(output.parameters, f"output {output.name!r}")
        binary = _flag(output.parameters, "binary_data", binary_default, f"output {output.name!r}")
        wanted.append(WantedOutput(output.name, binary))
    return wanted


def render_response(
    *,
    model_name: str,
    model_version: str,
    request_id: str,
    outputs: Sequence[Tensor],
    wanted: Sequence[WantedOutput],
    batched: bool,
) -> Response:
    """The ``$inference_response``: JSON, or JSON and binary data when an output is binary.

    With ``batched`` every output gets the leading batch dimension of 1 its inputs had, except
    a declared tensor's (its shape is its own).
    """
    produced = {tensor.name: tensor for tensor in outputs}
    entries: list[dict[str, Any]] = []
    buffers: list[bytes] = []
    for want in wanted:
        tensor = produced.get(want.name)
        if tensor is None:
            continue  # an unset oneof member
        entry: dict[str, Any] = {
            "name": tensor.name,
            "datatype": tensor.datatype,
            "shape": [1, *tensor.shape] if batched and tensor.raw is None else list(tensor.shape),
        }
        if want.binary:
            buffer = tensor.binary()
            entry["parameters"] = {"binary_data_size": len(buffer)}
            buffers.append(buffer)
        else:
            entry["data"] = _json_data(tensor)
        entries.append(entry)
    document = {
        "model_name": model_name,
        "model_version": model_version,
        "id": request_id,
        "outputs": entries,
    }
    try:
        head = json.dumps(document, allow_nan=False, separators=(",", ":")).encode()
    except ValueError as e:
        raise InvalidInferRequest(
            "an output holds NaN or infinity, which JSON cannot carry: request it as binary "
            "data (binary_data: true)"
        ) from e
    if not buffers:
        return Response(content=head, media_type="application/json")
    return Response(
        content=b"".join((head, *buffers)),
        media_type=BINARY_CONTENT_TYPE,
        headers={HEADER_LENGTH: str(len(head))},
    )


def _json_data(tensor: Tensor) -> list[Any]:
    elements = tensor.elements()
    if tensor.datatype != BYTES:
        return elements
    data = []
    for value in elements:
        if isinstance(value, bytes):
            try:
                value = value.decode()
            except UnicodeDecodeError as e:
                raise InvalidInferRequest(
                    f"output {tensor.name!r} holds bytes that are not UTF-8 text, which JSON "
                    "cannot carry: request it as binary data (binary_data: true)",
                    field=tensor.name,
                ) from e
        data.append(value)
    return data


def _flatten(data: list[Any]) -> list[Any]:
    flat: list[Any] = []
    for item in data:
        if isinstance(item, list):
            flat += _flatten(item)
        else:
            flat.append(item)
    return flat


def _flag(parameters: Mapping[str, Any], name: str, default: bool, where: str) -> bool:
    value = parameters.get(name, default)
    if not isinstance(value, bool):
        raise InvalidInferRequest(
            f"{where}: {name} must be true or false, got {value!r}", field=name
        )
    return value


def _refuse_unsupported(parameters: Mapping[str, Any], where: str) -> None:
    for name, why in _UNSUPPORTED_PARAMETERS.items():
        if parameters.get(name) not in (None, 0, "", False):
            raise InvalidInferRequest(f"{where}: {why} (parameter {name!r})", field=name)


def _decompress(body: bytes, content_encoding: str | None) -> bytes:
    encoding = (content_encoding or "identity").strip().lower()
    if encoding == "identity":
        return body
    if encoding not in ("gzip", "deflate"):
        raise InvalidInferRequest(
            f"Content-Encoding {content_encoding!r} is not supported (gzip, deflate or none)",
            field="Content-Encoding",
        )
    # 32 + MAX_WBITS: accept a zlib or a gzip header, whichever the body has.
    inflater = zlib.decompressobj(32 + zlib.MAX_WBITS)
    try:
        plain = inflater.decompress(body, MAX_DECOMPRESSED_BYTES)
    except zlib.error as e:
        raise InvalidInferRequest(
            f"the body is not valid {encoding} data: {e}", field="Content-Encoding"
        ) from e
    if inflater.unconsumed_tail:
        raise InvalidInferRequest(
            f"the body is larger than {MAX_DECOMPRESSED_BYTES} bytes once decompressed",
            field="Content-Encoding",
        )
    return plain


def request_payload(
    mapping: TensorMapping, request_class: type[Message], inputs: Sequence[Tensor], model: str
) -> tuple[bytes, bool]:
    """The serialized request message built from the inputs, and whether they were batched
    (all with a leading batch dimension of 1, see ``api.oip.tensors.fit``; declared tensors
    aside, whose shapes are their own)."""
    fitted: dict[str, Tensor] = {}
    batched: set[bool] = set()
    for tensor in inputs:
        spec = mapping.spec(tensor.name)
        if spec is None:
            names = ", ".join(s.name for s in mapping.specs)
            raise InvalidInferRequest(
                f"unknown input {tensor.name!r}; model {model!r} has inputs: {names}",
                field=tensor.name,
            )
        fitted[tensor.name], with_batch = fit(spec, tensor, model)
        if not spec.declared:
            batched.add(with_batch)
    if len(batched) > 1:
        raise InvalidInferRequest(
            "some inputs have a batch dimension and some do not: give it to all or to none"
        )
    message = mapping.to_message(request_class, fitted)
    return message.SerializeToString(), batched == {True}
