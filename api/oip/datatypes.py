"""The Open Inference Protocol's tensor datatypes: element sizes, binary formats, value checks.

A datatype is one of the protocol's names (``FP64``, ``INT32``, ``BYTES``...). Fixed-size types
travel in binary as little-endian elements of their native size (``BOOL`` is one byte, 0 or 1);
``BYTES`` elements are a 4-byte little-endian length followed by that many bytes.
"""

import math
from typing import Any, Final

from api.oip.exceptions import InvalidInferRequest

BYTES: Final = "BYTES"
BOOL: Final = "BOOL"

STRUCT_FORMATS: Final[dict[str, str]] = {
    "BOOL": "?",
    "UINT8": "B",
    "UINT16": "H",
    "UINT32": "I",
    "UINT64": "Q",
    "INT8": "b",
    "INT16": "h",
    "INT32": "i",
    "INT64": "q",
    "FP16": "e",
    "FP32": "f",
    "FP64": "d",
}
"""``struct`` format character of each fixed-size datatype (used with ``<``, little-endian)."""

INTEGER_RANGES: Final[dict[str, tuple[int, int]]] = {
    "UINT8": (0, 2**8 - 1),
    "UINT16": (0, 2**16 - 1),
    "UINT32": (0, 2**32 - 1),
    "UINT64": (0, 2**64 - 1),
    "INT8": (-(2**7), 2**7 - 1),
    "INT16": (-(2**15), 2**15 - 1),
    "INT32": (-(2**31), 2**31 - 1),
    "INT64": (-(2**63), 2**63 - 1),
}
"""Inclusive range of each integer datatype."""

FLOAT_MAXIMA: Final[dict[str, float]] = {"FP16": 65504.0, "FP32": 3.4028234663852886e38}
"""Largest finite value of the narrow float datatypes (FP64 is a Python float)."""

FLOATS: Final = frozenset({"FP16", "FP32", "FP64"})
INTEGERS: Final = frozenset(INTEGER_RANGES)
DATATYPES: Final = frozenset({*STRUCT_FORMATS, BYTES})


def config_data_type(datatype: str) -> str:
    """The name a model configuration gives a datatype (Triton's ``DataType`` enum):
    ``TYPE_FP32`` for ``FP32``, ``TYPE_STRING`` for ``BYTES``."""
    return "TYPE_STRING" if datatype == BYTES else f"TYPE_{datatype}"


def is_datatype(name: str) -> bool:
    """True for a datatype name of the protocol."""
    return name in DATATYPES


def check_value(datatype: str, value: Any, tensor: str) -> Any:
    """Return a JSON element checked against ``datatype`` (ints accepted for floats).

    Raise ``InvalidInferRequest`` naming ``tensor`` when the element is of the wrong kind or out
    of the datatype's range.
    """
    if datatype == BOOL:
        if isinstance(value, bool):
            return value
        raise _wrong(tensor, datatype, value, "true or false")
    if datatype == BYTES:
        if isinstance(value, str):
            return value
        raise _wrong(tensor, datatype, value, "a string")
    if isinstance(value, bool):
        raise _wrong(tensor, datatype, value, "a number")
    if datatype in INTEGERS:
        if not isinstance(value, int):
            raise _wrong(tensor, datatype, value, "an integer")
        check_integer(datatype, value, tensor)
        return value
    if not isinstance(value, int | float):
        raise _wrong(tensor, datatype, value, "a number")
    number = float(value)
    check_float(datatype, number, tensor)
    return number


def check_integer(datatype: str, value: int, tensor: str) -> None:
    """Raise ``InvalidInferRequest`` unless ``value`` fits the integer ``datatype``."""
    low, high = INTEGER_RANGES[datatype]
    if not low <= value <= high:
        raise InvalidInferRequest(
            f"tensor {tensor!r}: {value} is out of the range of {datatype} ({low} to {high})",
            field=tensor,
        )


def check_float(datatype: str, value: float, tensor: str) -> None:
    """Raise ``InvalidInferRequest`` if a finite ``value`` overflows the float ``datatype``."""
    maximum = FLOAT_MAXIMA.get(datatype)
    if maximum is not None and math.isfinite(value) and abs(value) > maximum:
        raise InvalidInferRequest(
            f"tensor {tensor!r}: {value!r} is out of the range of {datatype}", field=tensor
        )


def _wrong(tensor: str, datatype: str, value: Any, expected: str) -> InvalidInferRequest:
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    return InvalidInferRequest(
        f"tensor {tensor!r} is {datatype}: each element must be {expected}, got {shown}",
        field=tensor,
    )
