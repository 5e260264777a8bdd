"""Redis key layout of the registry (under the configurable ``Settings.key_prefix``)."""

from typing import Final

DEFAULT_KEY_PREFIX: Final = "conveyor:registry:"

MODELS_SET: Final = "models"
"""Set of every model name ever registered."""

MODEL_HASH: Final = "model:"
"""Hash ``model:<name>``: version, queue, request/response types, descriptor set, example."""

INSTANCES_ZSET: Final = "instances:"
"""Sorted set ``instances:<name>``: instance id scored by its expiry time (Unix ms)."""
