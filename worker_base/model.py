"""The model contract: a model is a small class; all plumbing lives in the worker base."""

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from typing import Any, ClassVar, Self, cast

from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from conveyor.descriptors import MessageDescriptor
from worker_base import progress

_TEXT_TYPES = frozenset({FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES})


class Model(ABC):
    """Base class of every model served by Conveyor.

    A subclass sets ``name`` (and optionally ``version``) and implements ``process_request`` or
    ``process_stream`` (or both) and the two ``get_*_format`` methods; a class that implements
    neither of the first two cannot be instantiated (``TypeError``). The worker calls ``load``
    once before taking tasks and ``close`` once after the last one.

    Streaming: any task may ask for its response in pieces (``Task.stream``); the worker then
    runs it alone (never in a batch) through ``process_stream`` and sends each piece to the
    client as it is yielded (docs/protocol.md, "Streaming"). A model that answers in one piece
    needs nothing for it: the default ``process_stream`` yields ``process_request``'s response
    once. A generative model implements ``process_stream`` and may leave out
    ``process_request``: a request that does not ask for a stream gets the pieces combined
    (``combine``), which is also the stored result of a streamed task. A model following the
    text-generation contract sets ``text_generation`` (checked when the worker starts; the
    OpenAI-compatible endpoints serve it).

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

    name: str
    """The model's name (``MODEL_NAME`` overrides it). ``name``, ``version`` and
    ``max_batch_size`` are class attributes, or set on the instance by a constructor that
    learns them only at start-up (a model read from a file); the worker reads them when it is
    made."""
    version: str = "1"
    max_batch_size: int = 1
    max_batch_delay_ms: ClassVar[float] = 2.0
    retry_on: ClassVar[tuple[type[Exception], ...]] = ()
    max_retries: ClassVar[int] = 3
    concurrency: ClassVar[int] = 4
    """Tasks (or batches) one worker process runs at once (``WORKER_CONCURRENCY`` overrides it).
    A streamed task holds its runner until its last piece: a model that streams for long, mostly
    waiting, wants more."""
    text_generation: ClassVar[bool] = False
    """True for a model that follows the text-generation contract (docs/protocol.md): its request
    message has a string ``prompt`` and may have an integer ``max_tokens`` and ``seed`` and a
    floating-point ``temperature``; its response (each piece of it) a string ``text``. The
    worker refuses to start when the messages do not (``worker_base.contracts``)."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:
        """Refuse a class that implements neither ``process_request`` nor ``process_stream``
        (each default calls the other)."""
        if cls.process_request is Model.process_request and not cls.implements_streaming():
            raise TypeError(
                f"Can't instantiate model class {cls.__name__}: it implements neither "
                "process_request nor process_stream (a model implements at least one)"
            )
        return super().__new__(cls)

    async def process_request(self, body: bytes) -> Message:
        """Parse ``body`` (the serialized request message) and return the response message.

        Raise ``worker_base.InvalidRequest`` for a request the model cannot accept, and
        ``worker_base.RetryableError`` for a failure another run may not have (the task is
        retried); any other exception becomes the task's ``MODEL_ERROR`` result. Run CPU-heavy
        work off the event loop (``await asyncio.to_thread(...)``): the loop also sends the
        worker's heartbeats, and a loop blocked longer than the registry's liveness window makes
        the model look dead.

        The default (for a model that implements ``process_stream`` only) runs the stream to its
        end and returns its pieces combined (``combine``).
        """
        return self.combine([piece async for piece in self.process_stream(body)])

    async def process_stream(self, body: bytes) -> AsyncIterator[Message]:
        """Parse ``body`` and yield the response in pieces, each a response message, in order.

        An async generator (``async def`` with ``yield``). The worker sends each piece on as it
        is yielded, bounded: while earlier pieces are still being written the generator waits
        at its ``yield``. The client may stop the stream (its connection closed), the task may
        pass its deadline, or the stream its piece bound (``MAX_STREAM_CHUNKS``): the worker then
        closes the generator (``aclose``: ``GeneratorExit`` at the ``yield``, so ``finally``
        blocks run). Errors are raised as in ``process_request``, also after some pieces: a
        retried task streams again from its first piece (its readers see a ``restart`` marker
        first), so a stream must not depend on having run before. ``report_progress`` works
        here too. The response of the whole stream is ``combine(pieces)``.

        The default yields ``process_request``'s response once.
        """
        yield await self.process_request(body)

    def combine(self, pieces: Sequence[Message]) -> Message:
        """The response a stream's ``pieces`` make together: the stored result of a streamed
        task, and ``process_request``'s default answer.

        The default starts from an empty response message and adds each piece in turn: string
        and bytes fields are concatenated, repeated (and map) fields extended, sub-messages
        merged (protobuf ``MergeFrom``), any other field takes the piece's value when the piece
        sets it (in proto3: a value other than the default). So the pieces ``{"text": "a"}``,
        ``{"text": " b"}`` combine to ``{"text": "a b"}``, and one piece combines to itself.
        Raises ``TypeError`` for a piece that is not the response message.
        """
        # The upb descriptor a generated message has is what GetMessageClass takes at run time.
        response = cast(Descriptor, self.get_response_format())
        combined = message_factory.GetMessageClass(response)()
        for piece in pieces:
            if piece.DESCRIPTOR.full_name != response.full_name:
                raise TypeError(
                    f"cannot combine a {piece.DESCRIPTOR.full_name} into a {response.full_name}"
                )
            joined = {
                field.name: getattr(combined, field.name) + value
                for field, value in piece.ListFields()
                if field.type in _TEXT_TYPES and not field.is_repeated
            }
            combined.MergeFrom(piece)
            for name, value in joined.items():
                setattr(combined, name, value)
        return combined

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
        a short ``message``. Call it from ``process_request``, ``process_stream`` (or
        ``process_batch``, where it reports for every request of the batch). It reaches
        ``GET /tasks/{id}`` and the task's event stream for asynchronous and streamed tasks; for
        other synchronous ones it does nothing."""
        await progress.report(fraction, message)

    def example_request(self) -> dict[str, Any]:
        """Return an example request in the protobuf JSON mapping (shown by registry and docs)."""
        return {}

    @classmethod
    def implements_batching(cls) -> bool:
        """True when the class implements ``process_batch`` itself."""
        return cls.process_batch is not Model.process_batch

    @classmethod
    def implements_streaming(cls) -> bool:
        """True when the class implements ``process_stream`` itself (it answers in pieces; the
        worker announces the ``stream`` feature)."""
        return cls.process_stream is not Model.process_stream
