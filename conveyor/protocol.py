"""The wire protocol's names and keys, shared by the gateway, the registry and the workers.

A worker written in another language uses the same values (see docs/protocol.md).
"""

from typing import Final

QUEUE_PREFIX: Final = "conveyor.model."
"""A model's durable RabbitMQ queue is ``QUEUE_PREFIX + model_name``."""

RESULT_KEY_PREFIX: Final = "conveyor:result:"
"""A task's serialized ``TaskResult`` lives at ``RESULT_KEY_PREFIX + task_id``."""

TASK_KEY_PREFIX: Final = "conveyor:task:"
"""The gateway's record of a submitted task (its model) at ``TASK_KEY_PREFIX + task_id``."""

REPLY_CHANNEL_PREFIX: Final = "conveyor:reply:"
"""A gateway instance listens for finished task ids on ``REPLY_CHANNEL_PREFIX + gateway_id``."""

TASK_CONTENT_TYPE: Final = "application/x-protobuf; messageType=conveyor.v1.Task"
"""Content type of the RabbitMQ messages carrying a ``Task``."""


def queue_name(model: str) -> str:
    """Return the RabbitMQ queue name of ``model``."""
    return QUEUE_PREFIX + model


def result_key(task_id: str) -> str:
    """Return the Redis key of the result of ``task_id``."""
    return RESULT_KEY_PREFIX + task_id


def task_key(task_id: str) -> str:
    """Return the Redis key of the gateway's record of ``task_id``."""
    return TASK_KEY_PREFIX + task_id
