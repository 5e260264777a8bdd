"""Constants of the gateway: the wire protocol's names and the error codes it answers with."""

from typing import Final

from conveyor.protocol import (
    REPLY_CHANNEL_PREFIX,
    TASK_CONTENT_TYPE,
    queue_name,
    result_key,
    task_key,
)

__all__ = [
    "MODE_ASYNC",
    "MODE_SYNC",
    "REPLY_CHANNEL_PREFIX",
    "TASK_CONTENT_TYPE",
    "queue_name",
    "result_key",
    "task_key",
]

MODE_SYNC: Final = "sync"
MODE_ASYNC: Final = "async"
