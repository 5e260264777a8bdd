"""The tensors scenario's payloads: one image and one embedding in every form it sends, and the
checks that an answer carries them back.

The image is 224x224x3 UINT8 pixels (150,528 bytes), sent as a BYTES tensor of one element,
which is how the identity model's ``bytes image`` field maps to tensors (why that field, not a
UINT8 tensor: ``load_testing/tensor_model/model.py``); the embedding is 1x768 FP32. Both go with
a batch dimension of 1 (``[1, 1]`` and ``[1, 768]``), as a Triton client sends them. The forms:

- **REST binary** (the binary tensor data extension): a JSON header giving each input's
  ``binary_data_size``, then the image as one BYTES element (a 4-byte little-endian length and
  the bytes) and the embedding's 3,072 bytes; ``Inference-Header-Content-Length`` is the
  header's length, and ``binary_data_output`` asks for the answer in the same form.
- **REST JSON**: the image as a base64 string (a JSON string is text, so arbitrary bytes travel
  as base64, as JSON clients send them; the model answers the same text) and the embedding as
  768 numbers.
- **gRPC**: an ``inference.ModelInferRequest`` with ``raw_input_contents`` (tritonclient.grpc's
  form: the BYTES element length-prefixed as above), and for h2load one gRPC message as it
  travels in a request's DATA frames: a 0 byte (not compressed), the message's length as 4
  bytes big-endian, the message.
- **The reference**: the image bytes then the embedding bytes, ``application/octet-stream``.

And model_a's tensor form, ``data`` (BYTES ``[1]``), in REST JSON and in gRPC raw contents.
Each ``check_*`` returns None when an answer carries what was sent, else what is wrong.
"""

from __future__ import annotations

import base64
import json
import random
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from tritonclient.grpc import service_pb2

__all__ = [
    "BINARY_HEADER",
    "EMBEDDING_SIZE",
    "IMAGE_BYTES",
    "IMAGE_SHAPE",
    "OPAQUE",
    "HttpBody",
    "Tensors",
    "check_grpc",
    "check_model_a_grpc",
    "check_model_a_json",
    "check_reference",
    "check_refusal",
    "check_rest_binary",
    "check_rest_json",
    "grpc_frame",
    "grpc_request",
    "grpc_unframe",
    "model_a_grpc",
    "model_a_json",
    "reference_body",
    "rest_binary",
    "rest_json",
    "sized_grpc_request",
    "sized_rest_binary",
]

IMAGE_SHAPE: Final = (224, 224, 3)
IMAGE_BYTES: Final = 224 * 224 * 3
EMBEDDING_SIZE: Final = 768
BINARY_HEADER: Final = "Inference-Header-Content-Length"
OPAQUE: Final = "application/octet-stream"
_JSON: Final = "application/json"
_LENGTH = struct.Struct("<I")
_FRAME = struct.Struct(">BI")


@dataclass(frozen=True)
class Tensors:
    """An image (its pixels' bytes) and an embedding (little-endian FP32 bytes)."""

    image: bytes
    embedding: bytes

    @classmethod
    def sample(cls, seed: int = 29, image_bytes: int = IMAGE_BYTES) -> Tensors:
        """Random pixels and an embedding of ``EMBEDDING_SIZE`` values in [-1, 1), the same for
        the same seed (pixels do not compress, as a photograph's hardly do)."""
        rng = random.Random(seed)
        values = [rng.uniform(-1.0, 1.0) for _ in range(EMBEDDING_SIZE)]
        return cls(rng.randbytes(image_bytes), struct.pack(f"<{EMBEDDING_SIZE}f", *values))

    @property
    def size(self) -> int:
        """Bytes of both tensors: what one request carries, and one identity answer."""
        return len(self.image) + len(self.embedding)

    def embedding_values(self) -> list[float]:
        """The embedding as numbers (each exactly an FP32 value)."""
        return list(struct.unpack(f"<{len(self.embedding) // 4}f", self.embedding))


@dataclass(frozen=True)
class HttpBody:
    """A request body with its ``Content-Type`` and any other headers it needs."""

    body: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)


def _inputs(tensors: Tensors) -> list[dict[str, Any]]:
    return [
        {"name": "image", "datatype": "BYTES", "shape": [1, 1]},
        {"name": "embedding", "datatype": "FP32", "shape": [1, len(tensors.embedding) // 4]},
    ]


def rest_binary(tensors: Tensors) -> HttpBody:
    """``POST /v2/models/<m>/infer`` with the binary tensor data extension, answered in binary."""
    image = _LENGTH.pack(len(tensors.image)) + tensors.image
    inputs = _inputs(tensors)
    inputs[0]["parameters"] = {"binary_data_size": len(image)}
    inputs[1]["parameters"] = {"binary_data_size": len(tensors.embedding)}
    header = json.dumps(
        {"inputs": inputs, "parameters": {"binary_data_output": True}}, separators=(",", ":")
    ).encode()
    return HttpBody(header + image + tensors.embedding, OPAQUE, {BINARY_HEADER: str(len(header))})


def sized_rest_binary(total: int, seed: int = 29) -> tuple[HttpBody, Tensors]:
    """A REST binary body of exactly ``total`` bytes (the image sized to fill it), and its
    tensors: for checking ``MAX_BODY_BYTES`` at and just past the limit."""
    image_bytes = total
    for _ in range(8):  # the header's digits depend on the image's size: settle it
        tensors = Tensors.sample(seed, image_bytes)
        body = rest_binary(tensors)
        if len(body.body) == total:
            return body, tensors
        image_bytes -= len(body.body) - total
        if image_bytes < 0:
            break
    raise ValueError(f"no REST binary body is {total} bytes long")


def sized_grpc_request(
    model: str, total: int, seed: int = 29, outputs: Sequence[str] = ()
) -> service_pb2.ModelInferRequest:
    """A ``ModelInfer`` request of exactly ``total`` serialized bytes (the image sized to fill
    it), asking for ``outputs`` only when given: for checking the gRPC receive limit at and
    just past it (asking for the embedding alone keeps the identity answer small)."""
    image_bytes = total
    for _ in range(8):  # the fields' length prefixes depend on the image's size: settle it
        request = grpc_request(model, Tensors.sample(seed, image_bytes))
        for name in outputs:
            request.outputs.add(name=name)
        size = request.ByteSize()
        if size == total:
            return request
        image_bytes -= size - total
        if image_bytes < 0:
            break
    raise ValueError(f"no ModelInfer request is {total} bytes long")


def rest_json(tensors: Tensors) -> HttpBody:
    """``POST /v2/models/<m>/infer`` in JSON: the image as base64 text, the embedding as
    numbers."""
    inputs = _inputs(tensors)
    inputs[0]["data"] = [base64.b64encode(tensors.image).decode()]
    inputs[1]["data"] = tensors.embedding_values()
    return HttpBody(json.dumps({"inputs": inputs}, separators=(",", ":")).encode(), _JSON)


def reference_body(tensors: Tensors) -> HttpBody:
    """The reference's ``POST /predict``: the tensors' bytes, carried and echoed as they are."""
    return HttpBody(tensors.image + tensors.embedding, OPAQUE)


def model_a_json(data: str = "example") -> HttpBody:
    """model_a's tensor form in REST JSON: ``data``, BYTES ``[1]``."""
    document = {"inputs": [{"name": "data", "datatype": "BYTES", "shape": [1], "data": [data]}]}
    return HttpBody(json.dumps(document, separators=(",", ":")).encode(), _JSON)


def grpc_request(model: str, tensors: Tensors) -> service_pb2.ModelInferRequest:
    """``ModelInfer`` with the tensors in ``raw_input_contents``."""
    request = service_pb2.ModelInferRequest(model_name=model)
    for spec in _inputs(tensors):
        request.inputs.add(name=spec["name"], datatype=spec["datatype"], shape=spec["shape"])
    request.raw_input_contents.extend(
        [_LENGTH.pack(len(tensors.image)) + tensors.image, tensors.embedding]
    )
    return request


def model_a_grpc(model: str, data: str = "example") -> service_pb2.ModelInferRequest:
    """model_a's tensor form in ``ModelInfer``: ``data`` in ``raw_input_contents``."""
    request = service_pb2.ModelInferRequest(model_name=model)
    request.inputs.add(name="data", datatype="BYTES", shape=[1])
    encoded = data.encode()
    request.raw_input_contents.append(_LENGTH.pack(len(encoded)) + encoded)
    return request


def grpc_frame(message: bytes) -> bytes:
    """One gRPC message on the wire: not compressed (0), its length (big-endian), itself."""
    return _FRAME.pack(0, len(message)) + message


def grpc_unframe(frame: bytes) -> bytes:
    """The message of one gRPC frame; ``ValueError`` unless ``frame`` is exactly one."""
    if len(frame) < _FRAME.size:
        raise ValueError(f"a gRPC frame has a 5-byte prefix; got {len(frame)} bytes")
    compressed, length = _FRAME.unpack_from(frame)
    if compressed != 0 or len(frame) != _FRAME.size + length:
        raise ValueError(
            f"not one uncompressed gRPC frame (flag {compressed}, length {length}, "
            f"{len(frame) - _FRAME.size} bytes follow)"
        )
    return frame[_FRAME.size :]


# Checks of the answers.


def _binary_outputs(body: bytes, header_length: str | None) -> tuple[dict[str, Any], bytes] | str:
    if header_length is None or not header_length.isdigit():
        return f"no {BINARY_HEADER} in the answer"
    length = int(header_length)
    try:
        document = json.loads(body[:length])
    except ValueError as e:
        return f"the answer's header is not JSON: {e}"
    return document, body[length:]


def _outputs_by_name(document: Any) -> dict[str, dict[str, Any]] | str:
    outputs = document.get("outputs") if isinstance(document, dict) else None
    if not isinstance(outputs, list):
        return f"the answer has no outputs: {str(document)[:200]}"
    return {o["name"]: o for o in outputs if isinstance(o, dict) and isinstance(o.get("name"), str)}


def _check_shapes(outputs: dict[str, dict[str, Any]], tensors: Tensors) -> str | None:
    for spec in _inputs(tensors):
        got = outputs.get(spec["name"])
        if got is None:
            return f"output {spec['name']!r} is missing"
        if got.get("datatype") != spec["datatype"] or got.get("shape") != spec["shape"]:
            return (
                f"output {spec['name']!r} is {got.get('datatype')} {got.get('shape')}, "
                f"expected {spec['datatype']} {spec['shape']}"
            )
    return None


def check_rest_binary(body: bytes, header_length: str | None, tensors: Tensors) -> str | None:
    """A binary answer carries the image (one BYTES element) and the embedding back."""
    split = _binary_outputs(body, header_length)
    if isinstance(split, str):
        return split
    document, data = split
    outputs = _outputs_by_name(document)
    if isinstance(outputs, str):
        return outputs
    problem = _check_shapes(outputs, tensors)
    if problem:
        return problem
    offset = 0
    buffers: dict[str, bytes] = {}
    for output in document["outputs"]:
        size = output.get("parameters", {}).get("binary_data_size")
        if not isinstance(size, int):
            return f"output {output.get('name')!r} is not in binary"
        buffers[output["name"]] = data[offset : offset + size]
        offset += size
    if offset != len(data):
        return f"{len(data) - offset} bytes of binary data belong to no output"
    if buffers["image"] != _LENGTH.pack(len(tensors.image)) + tensors.image:
        return "the image came back changed"
    if buffers["embedding"] != tensors.embedding:
        return "the embedding came back changed"
    return None


def check_rest_json(body: bytes, tensors: Tensors) -> str | None:
    """A JSON answer carries the image (the base64 text sent) and the embedding back."""
    try:
        outputs = _outputs_by_name(json.loads(body))
    except ValueError as e:
        return f"the answer is not JSON: {e}"
    if isinstance(outputs, str):
        return outputs
    problem = _check_shapes(outputs, tensors)
    if problem:
        return problem
    if outputs["image"].get("data") != [base64.b64encode(tensors.image).decode()]:
        return "the image came back changed"
    values = outputs["embedding"].get("data")
    if not isinstance(values, list) or _fp32(values) != tensors.embedding:
        return "the embedding came back changed"
    return None


def _fp32(values: list[Any]) -> bytes | None:
    try:
        return struct.pack(f"<{len(values)}f", *values)
    except struct.error:
        return None


def check_reference(body: bytes, tensors: Tensors) -> str | None:
    """The reference echoes the bytes it was sent."""
    return None if body == tensors.image + tensors.embedding else "the body came back changed"


def check_refusal(status: int, content_type: str, body: bytes, expected: int) -> str | None:
    """A refusal on a ``/v2`` path: status ``expected`` and the protocol's JSON error object,
    ``{"error": "<message>"}`` with a message."""
    if status != expected:
        return f"HTTP {status}, expected {expected}"
    if not content_type.startswith(_JSON):
        return f"HTTP {status} as {content_type or 'no media type'}, not JSON"
    try:
        document = json.loads(body)
    except ValueError:
        return f"HTTP {status} with a body that is not JSON: {body[:100]!r}"
    message = document.get("error") if isinstance(document, dict) else None
    if not isinstance(message, str) or not message:
        return f"HTTP {status} without an error message: {body[:200]!r}"
    return None


def check_model_a_json(body: bytes, data: str = "example") -> str | None:
    """model_a's JSON answer: ``reply`` is ``Processed message: <data>``."""
    try:
        outputs = _outputs_by_name(json.loads(body))
    except ValueError as e:
        return f"the answer is not JSON: {e}"
    if isinstance(outputs, str):
        return outputs
    reply = outputs.get("reply", {}).get("data")
    expected = [f"Processed message: {data}"]
    return None if reply == expected else f"reply is {reply!r}, expected {expected!r}"


def _grpc_outputs(response: service_pb2.ModelInferResponse) -> dict[str, bytes] | str:
    """Each output's bytes as raw contents: ``raw_output_contents`` when the answer has them
    (in the order of ``outputs``), else each output's ``contents``."""
    if response.raw_output_contents:
        if len(response.raw_output_contents) != len(response.outputs):
            return (
                f"{len(response.raw_output_contents)} raw output contents for "
                f"{len(response.outputs)} outputs"
            )
        return {
            output.name: raw
            for output, raw in zip(response.outputs, response.raw_output_contents, strict=True)
        }
    found: dict[str, bytes] = {}
    for output in response.outputs:
        contents = output.contents
        if output.datatype == "BYTES":
            found[output.name] = b"".join(
                _LENGTH.pack(len(item)) + item for item in contents.bytes_contents
            )
        elif output.datatype == "FP32":
            values = list(contents.fp32_contents)
            found[output.name] = struct.pack(f"<{len(values)}f", *values)
        else:
            return f"output {output.name!r} has datatype {output.datatype}"
    return found


def check_grpc(response: service_pb2.ModelInferResponse, tensors: Tensors) -> str | None:
    """A ``ModelInfer`` answer carries the image and the embedding back."""
    shapes = {o.name: {"datatype": o.datatype, "shape": list(o.shape)} for o in response.outputs}
    problem = _check_shapes(shapes, tensors)
    if problem:
        return problem
    outputs = _grpc_outputs(response)
    if isinstance(outputs, str):
        return outputs
    if outputs.get("image") != _LENGTH.pack(len(tensors.image)) + tensors.image:
        return "the image came back changed"
    if outputs.get("embedding") != tensors.embedding:
        return "the embedding came back changed"
    return None


def check_model_a_grpc(
    response: service_pb2.ModelInferResponse, data: str = "example"
) -> str | None:
    """model_a's ``ModelInfer`` answer: ``reply`` is ``Processed message: <data>``."""
    outputs = _grpc_outputs(response)
    if isinstance(outputs, str):
        return outputs
    expected = f"Processed message: {data}".encode()
    reply = outputs.get("reply")
    if reply != _LENGTH.pack(len(expected)) + expected:
        return f"reply is {reply!r}, expected {expected!r}"
    return None
