"""Payloads the benchmark encodes, shaped like what Conveyor carries.

Each payload is a plain Python value (dicts, lists, str, int, float, bool) that every codec
accepts, plus the name of its kind, which schema-based codecs (protobuf, Avro) use to pick their
schema. Floats that a model consumes are float32-exact, so 32-bit wire types lose nothing.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

__all__ = ["KINDS", "Payload", "example_payloads", "float32_list"]

TEXT: Final = "text"
FEATURES: Final = "features"
TENSOR: Final = "tensor"
BATCH: Final = "batch"
NESTED: Final = "nested"

KINDS: Final[tuple[str, ...]] = (TEXT, FEATURES, TENSOR, BATCH, NESTED)
"""Payload kinds; each has a protobuf message and an Avro schema of the same shape."""

FEATURE_COUNT: Final = 30
TENSOR_SHAPE: Final = (512, 512)
BATCH_SIZE: Final = 64


@dataclass(frozen=True)
class Payload:
    """One benchmark input: a display name, its schema kind and the value itself."""

    name: str
    kind: str
    value: dict[str, Any]
    description: str


def float32_list(rng: np.random.Generator, count: int) -> list[float]:
    """Return ``count`` normally distributed floats, each exactly representable as float32."""
    values: list[float] = rng.standard_normal(count).astype(np.float32).tolist()
    return values


def _text() -> dict[str, Any]:
    return {"data": "Please summarise the delivery status of order 4711, thanks!"}


def _features(rng: np.random.Generator) -> dict[str, Any]:
    return {"features": float32_list(rng, FEATURE_COUNT)}


def _tensor(rng: np.random.Generator) -> dict[str, Any]:
    rows, cols = TENSOR_SHAPE
    return {"shape": [rows, cols], "values": float32_list(rng, rows * cols)}


def _batch(rng: np.random.Generator, ids: random.Random) -> dict[str, Any]:
    return {
        "requests": [
            {
                "task_id": str(uuid.UUID(int=ids.getrandbits(128), version=4)),
                "model": "model_b",
                "features": float32_list(rng, FEATURE_COUNT),
            }
            for _ in range(BATCH_SIZE)
        ]
    }


def _nested(ids: random.Random) -> dict[str, Any]:
    return {
        "id": str(uuid.UUID(int=ids.getrandbits(128), version=4)),
        "tags": ["fraud-check", "priority", "eu-west"],
        "meta": {"client": "web", "locale": "de_DE", "trace": f"{ids.getrandbits(64):016x}"},
        "items": [
            {
                "name": f"item-{i}",
                "count": ids.randrange(1, 10_000),
                "score": ids.random(),
                "ok": i % 3 != 0,
                "children": [{"key": f"k{j}", "value": ids.uniform(-1e6, 1e6)} for j in range(4)],
            }
            for i in range(12)
        ],
    }


def example_payloads(seed: int = 20240601) -> list[Payload]:
    """Build the fixed, seeded payloads the benchmark measures (same seed, same bytes)."""
    rng = np.random.default_rng(seed)
    ids = random.Random(seed)
    return [
        Payload("text", TEXT, _text(), "model_a request: one short sentence"),
        Payload("features_30", FEATURES, _features(rng), "model_b request: 30 float32 features"),
        Payload("tensor_1mb", TENSOR, _tensor(rng), "512x512 float32 tensor (1 MiB raw)"),
        Payload("batch_64", BATCH, _batch(rng, ids), "64 model_b requests with task ids"),
        Payload("nested", NESTED, _nested(ids), "document: tags, string map, 12 records"),
    ]
