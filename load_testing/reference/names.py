"""Names the reference gateway and worker share, from the environment."""

import os
from typing import Final

__all__ = ["OPAQUE", "amqp_url", "channel", "queue", "redis_url", "result_ttl"]

OPAQUE: Final = "application/octet-stream"
"""A body of this media type is carried as it is and echoed unchanged (any bytes)."""


def amqp_url() -> str:
    """The broker both use."""
    return os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


def redis_url() -> str:
    """The Redis both use."""
    return os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def queue() -> str:
    """The one task queue."""
    return f"reference_{os.environ.get('REF_TAG', 'bench')}"


def channel() -> str:
    """The one result channel (and the prefix of the result keys)."""
    return f"reference_results_{os.environ.get('REF_TAG', 'bench')}"


def result_ttl() -> int:
    """Seconds the worker keeps a result in Redis (``REF_RESULT_TTL``, default 60)."""
    return int(os.environ.get("REF_RESULT_TTL", "60"))
