"""The model contract: a model is a small class; all plumbing lives in the worker base."""

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

from google.protobuf.message import Message

from conveyor.descriptors import MessageDescriptor
from worker_base import progress


class Model(ABC):
    """Base class of every model served by Conveyor.

    A subclass sets ``name`` (and optionally ``version``) and implements the seed's three methods.
    The worker calls ``load`` once before taking tasks and ``close`` once after the last one.

    Dynamic batching: a model that overrides ``process_batch`` and sets ``max_batch_size`` above 1
    gets up to that many tasks per call, collected for at most ``max_batch_delay_ms`` after the
    first one (``MAX_BATCH_SIZE`` / ``MAX_BATCH_DELAY_MS`` override both; ``MAX_BATCH_SIZE=1``
    turns batching off). Each task is still answered on its own. Once a few waits in a row end
    with one task (a lone client), the worker stops waiting until two or more tasks are queued
    at once (``worker_base.scheduler``).

    Retries: a task whose run raised ``worker_base.RetryableError``, or an exception of a type
    in ``retry_on``, runs again after a backoff, up to ``max_retries`` times (``MAX_RETRIES``
    overrides it, a request's ``max_retries`` replaces either); then it fails as ``MODEL_ERROR``
    listing every attempt's error (``worker_base.retry_policy``). Any other exception fails the
    task at once.
    """

    name: ClassVar[str]
    version: ClassVar[str] = "1"
    max_batch_size: ClassVar[int] = 1
    max_batch_delay_ms: ClassVar[float] = 2.0
    retry_on: ClassVar[tuple[type[Exception], ...]] = ()
    max_retries: ClassVar[int] = 3

    @abstractmethod
    async def process_request(self, body: bytes) -> Message:
        """Parse ``body`` (the serialized request message) and return the response message.

        Raise ``worker_base.InvalidRequest`` for a request the model cannot accept, and
        ``worker_base.RetryableError`` for a failure another run may not have (the task is
        retried); any other exception becomes the task's ``MODEL_ERROR`` result. Run CPU-heavy
        work off the event loop (``await asyncio.to_thread(...)``): the loop also sends the
        worker's heartbeats, and a loop blocked longer than the registry's liveness window makes
        the model look dead.
        """

    async def process_batch(self, bodies: Sequence[bytes]) -> Sequence[Message | Exception]:
        """Process several requests at once; return one response or exception per request.

        An exception in the returned list fails only its own task (``InvalidRequest`` ->
        ``INVALID_ARGUMENT``, a retryable one -> a retry of that task alone, anything else ->
        ``MODEL_ERROR``); raising fails the whole batch (each task retried if it is retryable).
        The default calls ``process_request`` for each body in turn.
        """
        outcomes: list[Message | Exception] = []
        for body in bodies:
            try:
                outcomes.append(await self.process_request(body))
            except Exception as e:
                outcomes.append(e)
        return outcomes

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

    async def report_progress(self, fraction: float | None = None, message: str = "") -> None:
        """Report how far the current request is: ``fraction`` from 0 to 1 (None: unknown) and
        a short ``message``. Call it from ``process_request`` (or ``process_batch``, where it
        reports for every request of the batch). It reaches ``GET /tasks/{id}`` and the task's
        event stream for asynchronous tasks; for synchronous ones it does nothing."""
        await progress.report(fraction, message)

    def example_request(self) -> dict[str, Any]:
        """Return an example request in the protobuf JSON mapping (shown by registry and docs)."""
        return {}

    @classmethod
    def implements_batching(cls) -> bool:
        """True when the class implements ``process_batch`` itself."""
        return cls.process_batch is not Model.process_batch
