"""The binary tensor data extension: a JSON header followed by raw tensor bytes.

A request or response in binary form is one body: the JSON object, whose byte length the
``Inference-Header-Content-Length`` header gives, then the tensors' bytes back to back in the
order of the tensors in the JSON that carry ``parameters.binary_data_size``. Elements are
little-endian in their native size, row-major, without padding; ``BOOL`` is one byte (0 or 1);
a ``BYTES`` element is a 4-byte little-endian unsigned length followed by that many bytes.
"""

import math
import struct
from collections.abc import Iterable, Sequence
from typing import Any, Final

from api.oip.datatypes import BOOL, BYTES, STRUCT_FORMATS
from api.oip.exceptions import InvalidInferRequest

__all__ = [
    "BINARY_CONTENT_TYPE",
    "HEADER_LENGTH",
    "BinaryReader",
    "decode_elements",
    "encode_elements",
    "join_body",
    "raw_problem",
    "split_body",
]

HEADER_LENGTH: Final = "Inference-Header-Content-Length"
"""The HTTP header giving the byte length of the JSON part of a binary body."""

BINARY_CONTENT_TYPE: Final = "application/octet-stream"
"""Content-Type of a response in binary form (a JSON-only response is ``application/json``)."""

_LENGTH = struct.Struct("<I")


def split_body(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """Split a request body into its JSON part and its binary part.

    Without the header the whole body is JSON. Raise ``InvalidInferRequest`` when the header is
    not a length within the body.
    """
    if header_length is None:
        return body, b""
    try:
        length = int(header_length)
    except ValueError:
        length = -1
    if not 0 < length <= len(body):
        raise InvalidInferRequest(
            f"{HEADER_LENGTH} must be the byte length of the JSON part of the body "
            f"(1 to {len(body)}), got {header_length!r}",
            field=HEADER_LENGTH,
        )
    return body[:length], body[length:]


def join_body(header: bytes, buffers: Iterable[bytes]) -> bytes:
    """A binary body: the JSON ``header`` then every buffer, in order."""
    return b"".join((header, *buffers))


def decode_elements(datatype: str, raw: bytes, tensor: str) -> list[Any]:
    """Return the elements of ``raw`` (bytes of a ``datatype`` tensor) as a flat list.

    ``BYTES`` elements come back as ``bytes``, ``BOOL`` as ``bool``, others as ``int``/``float``.
    Raise ``InvalidInferRequest`` naming ``tensor`` when the bytes do not form whole elements.
    """
    if datatype == BYTES:
        return _split_bytes_elements(raw, tensor)
    code = STRUCT_FORMATS[datatype]
    size = struct.calcsize(code)
    if len(raw) % size:
        raise InvalidInferRequest(
            f"tensor {tensor!r}: {len(raw)} bytes are not whole {datatype} elements "
            f"of {size} bytes",
            field=tensor,
        )
    if datatype == BOOL and any(byte > 1 for byte in raw):
        raise InvalidInferRequest(
            f"tensor {tensor!r}: a BOOL element must be the byte 0 or 1", field=tensor
        )
    return list(struct.unpack(f"<{len(raw) // size}{code}", raw))


def encode_elements(datatype: str, values: Sequence[Any]) -> bytes:
    """Return the binary form of a flat list of ``datatype`` elements.

    ``BYTES`` elements may be ``bytes`` or ``str`` (sent as UTF-8).
    """
    if datatype == BYTES:
        parts = []
        for value in values:
            data = value.encode() if isinstance(value, str) else bytes(value)
            parts += [_LENGTH.pack(len(data)), data]
        return b"".join(parts)
    return struct.pack(f"<{len(values)}{STRUCT_FORMATS[datatype]}", *values)


def raw_problem(datatype: str, shape: Sequence[int], raw: bytes) -> str | None:
    """What is wrong with ``raw`` as the bytes of a ``datatype`` tensor of ``shape``, or None.

    Fixed-size elements are checked by length alone (``BOOL`` bytes must be 0 or 1); ``BYTES``
    by walking the elements' lengths, without copying them.
    """
    count = math.prod(shape)
    if datatype == BYTES:
        found = _count_bytes_elements(raw)
        if found is None:
            return "its BYTES data ends inside an element"
        if found != count:
            return f"shape {list(shape)} holds {count} elements but the data has {found}"
        return None
    size = struct.calcsize(STRUCT_FORMATS[datatype])
    if len(raw) != count * size:
        return (
            f"shape {list(shape)} holds {count} {datatype} elements, {count * size} bytes, "
            f"but the data is {len(raw)} bytes"
        )
    if datatype == BOOL and raw.translate(None, b"\x00\x01"):
        return "a BOOL element must be the byte 0 or 1"
    return None


def _count_bytes_elements(raw: bytes) -> int | None:
    """How many ``BYTES`` elements ``raw`` holds; None when it ends inside one."""
    count = 0
    offset = 0
    while offset < len(raw):
        if offset + _LENGTH.size > len(raw):
            return None
        (length,) = _LENGTH.unpack_from(raw, offset)
        offset += _LENGTH.size + length
        if offset > len(raw):
            return None
        count += 1
    return count


def _split_bytes_elements(raw: bytes, tensor: str) -> list[Any]:
    elements: list[Any] = []
    offset = 0
    while offset < len(raw):
        if offset + _LENGTH.size > len(raw):
            raise _truncated(tensor, offset)
        (length,) = _LENGTH.unpack_from(raw, offset)
        offset += _LENGTH.size
        if offset + length > len(raw):
            raise _truncated(tensor, offset)
        elements.append(raw[offset : offset + length])
        offset += length
    return elements


def _truncated(tensor: str, offset: int) -> InvalidInferRequest:
    return InvalidInferRequest(
        f"tensor {tensor!r}: BYTES data ends inside an element (at byte {offset}); each element "
        "is a 4-byte little-endian length followed by that many bytes",
        field=tensor,
    )


class BinaryReader:
    """Hands out the binary part of a request to its inputs, in order."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._offset = 0

    def take(self, size: Any, tensor: str) -> bytes:
        """Return the next ``size`` bytes for input ``tensor``; raise ``InvalidInferRequest``
        when ``size`` is not a count or more bytes are asked for than remain."""
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise InvalidInferRequest(
                f"input {tensor!r}: binary_data_size must be a byte count, got {size!r}",
                field=tensor,
            )
        end = self._offset + size
        if end > len(self._data):
            raise InvalidInferRequest(
                f"input {tensor!r}: binary_data_size is {size} but only "
                f"{len(self._data) - self._offset} bytes of binary data remain",
                field=tensor,
            )
        chunk = bytes(self._data[self._offset : end])
        self._offset = end
        return chunk

    def finish(self) -> None:
        """Raise ``InvalidInferRequest`` if bytes are left that no input claimed."""
        left = len(self._data) - self._offset
        if left:
            raise InvalidInferRequest(
                f"{left} bytes of binary data follow the JSON header but no input's "
                "binary_data_size accounts for them",
                field=HEADER_LENGTH,
            )
