"""An inference request's body in, tensors out; response tensors in, a response body out.

The JSON objects are the protocol's ``$inference_request`` / ``$inference_response``; the
binary parts follow ``api.oip.binary``. Request parameters the gateway reads:

- ``timeout`` (seconds, a number > 0, at most the gateway's ``MAX_TIMEOUT``; default
  ``DEFAULT_TIMEOUT``): the task's deadline and how long the request waits.
- ``priority`` (integer 0 to 9, higher first; default 0): the task's priority.
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
from collections.abc import Sequence
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
    encode_elements,
    split_body,
)
from api.oip.datatypes import BYTES, check_value, is_datatype
from api.oip.exceptions import InvalidInferRequest
from api.oip.tensors import Tensor, TensorMapping, TensorSpec, fit

PRIORITY_RANGE: Final = (0, 9)
"""Inclusive range of ``parameters.priority``; higher runs first."""

DEFAULT_PRIORITY: Final = 0

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
    priority: int
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


def decode_inputs(request: InferRequest, binary: bytes) -> list[Tensor]:
    """The request's inputs as tensors, from JSON ``data`` or the binary part."""
    reader = BinaryReader(binary)
    tensors: list[Tensor] = []
    seen: set[str] = set()
    for given in request.inputs:
        name = given.name
        if name in seen:
            raise InvalidInferRequest(f"input {name!r} is given twice", field=name)
        seen.add(name)
        if not is_datatype(given.datatype):
            raise InvalidInferRequest(
                f"input {name!r} has an unknown datatype {given.datatype!r}", field=name
            )
        _refuse_unsupported(given.parameters, f"input {name!r}")
        if "binary_data_size" in given.parameters:
            if given.data is not None:
                raise InvalidInferRequest(
                    f"input {name!r} has both data and binary_data_size", field=name
                )
            raw = reader.take(given.parameters["binary_data_size"], name)
            data = decode_elements(given.datatype, raw, name)
        elif isinstance(given.data, list):
            data = [check_value(given.datatype, value, name) for value in _flatten(given.data)]
        else:
            raise InvalidInferRequest(
                f"input {name!r} needs data: a JSON array, or binary_data_size", field=name
            )
        expected = math.prod(given.shape)
        if len(data) != expected:
            raise InvalidInferRequest(
                f"input {name!r} has shape {given.shape}, i.e. {expected} elements, "
                f"but {len(data)} were given",
                field=name,
            )
        tensors.append(Tensor(name, given.datatype, tuple(given.shape), data))
    reader.finish()
    return tensors


def infer_options(
    request: InferRequest, default_timeout: float, max_timeout: float
) -> InferOptions:
    """Read ``timeout``, ``priority`` and ``binary_data_output`` from the request parameters."""
    parameters = request.parameters
    _refuse_unsupported(parameters, "the request")
    timeout = parameters.get("timeout", default_timeout)
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not 0 < timeout <= max_timeout
    ):
        raise InvalidInferRequest(
            f"parameters.timeout is in seconds: a number above 0 and at most {max_timeout:g}, "
            f"got {timeout!r}",
            field="timeout",
        )
    priority = parameters.get("priority", DEFAULT_PRIORITY)
    low, high = PRIORITY_RANGE
    if isinstance(priority, bool) or not isinstance(priority, int) or not low <= priority <= high:
        raise InvalidInferRequest(
            f"parameters.priority must be an integer from {low} to {high} (higher runs first), "
            f"got {priority!r}",
            field="priority",
        )
    binary_output = _flag(parameters, "binary_data_output", False, "parameters")
    return InferOptions(
        request_id=request.id or uuid.uuid4().hex,
        timeout=float(timeout),
        priority=priority,
        binary_output=binary_output,
    )


def wanted_outputs(
    request: InferRequest, specs: Sequence[TensorSpec], binary_default: bool
) -> list[WantedOutput]:
    """The outputs to answer: those requested (each must exist), else all of them."""
    if request.outputs is None:
        return [WantedOutput(spec.name, binary_default) for spec in specs]
    names = [spec.name for spec in specs]
    wanted: list[WantedOutput] = []
    for output in request.outputs:
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

    With ``batched`` every output gets the leading batch dimension of 1 its inputs had.
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
            "shape": [1, *tensor.shape] if batched else list(tensor.shape),
        }
        if want.binary:
            buffer = encode_elements(tensor.datatype, tensor.data)
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
    if tensor.datatype != BYTES:
        return tensor.data
    data = []
    for value in tensor.data:
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


def _flag(parameters: dict[str, Any], name: str, default: bool, where: str) -> bool:
    value = parameters.get(name, default)
    if not isinstance(value, bool):
        raise InvalidInferRequest(
            f"{where}: {name} must be true or false, got {value!r}", field=name
        )
    return value


def _refuse_unsupported(parameters: dict[str, Any], where: str) -> None:
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
    (all with a leading batch dimension of 1, see ``api.oip.tensors.fit``)."""
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
        batched.add(with_batch)
    if len(batched) > 1:
        raise InvalidInferRequest(
            "some inputs have a batch dimension and some do not: give it to all or to none"
        )
    message = mapping.to_message(request_class, fitted)
    return message.SerializeToString(), batched == {True}
