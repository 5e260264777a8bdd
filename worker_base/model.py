"""The model contract: a model is a small class; all plumbing lives in the runner."""

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from google.protobuf.message import Message

from conveyor.descriptors import MessageDescriptor


class Model(ABC):
    """Base class of every model served by Conveyor.

    A subclass sets ``name`` (and optionally ``version``) and implements the seed's three methods.
    The runner calls ``load`` once before taking tasks and ``close`` once after the last one.
    """

    name: ClassVar[str]
    version: ClassVar[str] = "1"

    @abstractmethod
    async def process_request(self, body: bytes) -> Message:
        """Parse ``body`` (the serialized request message) and return the response message.

        Raise ``worker_base.InvalidRequest`` for a request the model cannot accept; any other
        exception becomes the task's ``MODEL_ERROR`` result. Run CPU-heavy work off the event
        loop (``await asyncio.to_thread(...)``): the loop also sends the worker's heartbeats,
        and a loop blocked longer than the registry's liveness window makes the model look dead.
        """

    @abstractmethod
    def get_request_format(self) -> MessageDescriptor:
        """Return the descriptor of the request message."""

    @abstractmethod
    def get_response_format(self) -> MessageDescriptor:
        """Return the descriptor of the response message."""

    async def load(self) -> None:
        """Load resources (weights, files) before the first task; no-op by default."""
        return None

    async def close(self) -> None:
        """Release resources after the last task; no-op by default."""
        return None

    def example_request(self) -> dict[str, Any]:
        """Return an example request in the protobuf JSON mapping (shown by registry and docs)."""
        return {}
