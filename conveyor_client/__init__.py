"""conveyor-client: call a Conveyor gateway from Python.

    from conveyor_client import Client

    with Client("http://localhost:8000", api_key="...") as client:
        client.predict("model_a", {"data": "x"})          # {"reply": "Processed message: x"}
        task_id = client.submit("model_a", {"data": "y"})
        client.wait(task_id, timeout=30).result

``AsyncClient`` has the same calls, awaited. Errors are ``ConveyorError`` subclasses, one per
family of the gateway's error codes (docs/sdk.md).
"""

from conveyor_client.async_client import AsyncClient
from conveyor_client.calls import RetryPolicy, Task
from conveyor_client.client import Client
from conveyor_client.errors import (
    ConflictError,
    ConveyorError,
    InvalidRequestError,
    ModelError,
    NotFoundError,
    OverloadedError,
    PayloadError,
    TimeoutError,
    UnauthorizedError,
    UnavailableError,
)
from conveyor_client.sse import Done, Piece, Restart, StreamEvent

__all__ = [
    "AsyncClient",
    "Client",
    "ConflictError",
    "ConveyorError",
    "Done",
    "InvalidRequestError",
    "ModelError",
    "NotFoundError",
    "OverloadedError",
    "PayloadError",
    "Piece",
    "Restart",
    "RetryPolicy",
    "StreamEvent",
    "Task",
    "TimeoutError",
    "UnauthorizedError",
    "UnavailableError",
]
