"""The wire protocol's names and keys, shared by the gateway, the registry and the workers.

A worker written in another language uses the same values (see docs/protocol.md).

Queues, per model version (``<m>`` a model name, ``<v>`` a version):

- ``conveyor.tasks.<m>.<v>``: the durable lane, a quorum queue (replicated, persistent,
  with a delivery limit): asynchronous tasks of priority 0-4.
- ``conveyor.tasks.<m>.<v>.high``: the same for asynchronous tasks of priority 5-9.
- ``conveyor.sync.<m>.<v>``: the fast lane, a transient classic queue with message priorities:
  synchronous tasks (the caller waits, and retries on an error).
- ``conveyor.dead.<m>``: dead letters of every version of the model (a quorum queue).
- ``conveyor.delay.<m>.<v>.<ms>``: the delay lane, quorum queues whose messages expire after
  ``<ms>`` milliseconds (one of ``DELAY_BUCKETS_MS``) and are then dead-lettered back to the
  durable lane their routing key names: tasks waiting to be retried. Each is bound to the
  direct exchange ``conveyor.delay.<ms>`` with the names of the version's two durable lanes.
- ``conveyor.model.<m>``: the classic queue of earlier releases; workers drain it if it exists.
"""

import re
from typing import Final

MODEL_NAME_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")
"""What a model name may be: letters, digits, ``_`` and ``-``, 1-100 characters."""

VERSION_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
"""What a model version may be: letters, digits, ``_``, ``.`` and ``-``, 1-32 characters."""

MIN_PRIORITY: Final = 0
MAX_PRIORITY: Final = 9
HIGH_PRIORITY: Final = 5
"""Priorities from this one up go to the durable lane's ``.high`` queue."""

LEGACY_QUEUE_PREFIX: Final = "conveyor.model."
"""Earlier releases' classic queue of a model: ``LEGACY_QUEUE_PREFIX + model``."""

DURABLE_QUEUE_PREFIX: Final = "conveyor.tasks."
SYNC_QUEUE_PREFIX: Final = "conveyor.sync."
DEAD_LETTER_QUEUE_PREFIX: Final = "conveyor.dead."
HIGH_SUFFIX: Final = ".high"

DEAD_LETTER_EXCHANGE: Final = "conveyor.dead"
"""Direct exchange receiving dead letters; routing key = model name."""

DELAY_PREFIX: Final = "conveyor.delay."
"""Prefix of the delay lane's queues (``delay_queue``) and exchanges (``delay_exchange``)."""

DELAY_BUCKETS_MS: Final = tuple(1 << k for k in range(6, 23))
"""The delays a task can wait in the delay lane, in milliseconds: the powers of two from 64 ms
to 4 194 304 ms (about 70 minutes). A queue holds one delay (its TTL), so it stays in order of
expiry: RabbitMQ expires messages only at the head of a queue."""

RESULT_KEY_PREFIX: Final = "conveyor:result:"
"""A task's serialized ``TaskResult`` lives at ``RESULT_KEY_PREFIX + task_id``."""

TASK_KEY_PREFIX: Final = "conveyor:task:"
"""The gateway's record of a task (model, version, deadline): ``TASK_KEY_PREFIX + id``."""

RUNNING_KEY_PREFIX: Final = "conveyor:running:"
"""Set by a worker when it starts an asynchronous task, so a cancel can tell it is too late."""

STATS_KEY_PREFIX: Final = "conveyor:stats:"
"""A model version's statistics, a hash the workers add to: ``STATS_KEY_PREFIX + m:v``."""

EVENTS_KEY_PREFIX: Final = "conveyor:events:"
"""An asynchronous task's events, a Redis stream (``conveyor.events``): prefix + task id."""

MAX_EVENTS: Final = 1000
"""The most entries a task's event stream keeps (``XADD MAXLEN ~``): its oldest progress goes
first; the final event, always the newest, is never trimmed."""

QUEUE_COUNTS_PREFIX: Final = "conveyor:queue:"
"""A version's counts of asynchronous tasks ``submitted`` and ``started``, a hash
(``conveyor.events``): ``QUEUE_COUNTS_PREFIX + m:v``."""

CALLBACKS_STREAM: Final = "conveyor:callbacks"
"""The stream of callback deliveries due: whoever stores the final result of a task that has a
``callback_url`` appends one entry here in the same script (``conveyor.results``)."""

CALLBACK_KEY_PREFIX: Final = "conveyor:callback:"
"""A task's callback delivery state, a hash: ``CALLBACK_KEY_PREFIX + task_id``."""

CHUNK_CHANNEL_PREFIX: Final = "conveyor:chunks:"
"""A gateway instance listens for the pieces of its streamed tasks on ``CHUNK_CHANNEL_PREFIX +
gateway_id`` (``Task.chunk_channel``; each message a ``StreamChunk``)."""

STOP_KEY_PREFIX: Final = "conveyor:stop:"
"""Set (``STOP_KEY_PREFIX + task_id``) when nobody wants a streamed task's pieces any more (its
synchronous client disconnected): the worker stops the model's stream at its next piece."""

STREAMED_KEY_PREFIX: Final = "conveyor:streamed:"
"""Set by a worker when a run of a task appends its first piece; a later run that finds it
set marks its stream with a ``restart`` event first (``conveyor.streams``)."""

STREAM_FEATURE: Final = "stream"
"""The feature a worker announces when its model yields its response in pieces (it implements
``process_stream``). Every model can be asked for a stream; others answer in one piece."""

TEXT_GENERATION_FEATURE: Final = "text-generation"
"""The feature of a model that follows the text-generation contract (docs/protocol.md): its
request message has a string ``prompt`` (and may have integer ``max_tokens`` and ``seed``,
number ``temperature``), its response a string ``text``. The OpenAI-compatible endpoints serve
only such models."""

MAX_STREAM_CHUNKS: Final = 10_000
"""The default of the most pieces one run of a streamed task may yield (the worker's
``MAX_STREAM_CHUNKS``); past it the task fails. The task's event stream keeps them all."""

REPLY_CHANNEL_PREFIX: Final = "conveyor:reply:"
"""A gateway instance listens for finished tasks on ``REPLY_CHANNEL_PREFIX + gateway_id``."""

TASK_CONTENT_TYPE: Final = "application/x-protobuf; messageType=conveyor.v1.Task"
"""Content type of the RabbitMQ messages carrying a ``Task``."""

TASK_BATCH_CONTENT_TYPE: Final = "application/x-protobuf; messageType=conveyor.v1.TaskBatch"
"""Content type of the fast lane's messages carrying several synchronous tasks (a ``TaskBatch``)."""

TASK_BATCH_FEATURE: Final = "task-batch"
"""The feature a worker announces (``Registration.features``) when it unpacks ``TaskBatch``
messages; a gateway packs a version's synchronous tasks only when every live instance of the
version announced it."""

MAX_TASKS_PER_MESSAGE: Final = 32
"""The most tasks a gateway packs into one ``TaskBatch`` message."""


def valid_model_name(name: str) -> bool:
    """True when ``name`` matches ``MODEL_NAME_PATTERN``."""
    return MODEL_NAME_PATTERN.fullmatch(name) is not None


def valid_version(version: str) -> bool:
    """True when ``version`` matches ``VERSION_PATTERN``."""
    return VERSION_PATTERN.fullmatch(version) is not None


def version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key of versions: numeric parts compare as numbers ("10" > "9"), and after words."""
    parts = re.split(r"[._-]", version)
    return tuple((1, int(p)) if p.isdigit() else (0, p) for p in parts)


def durable_queue(model: str, version: str, high: bool = False) -> str:
    """The durable lane (quorum queue) of a model version; ``high`` for priorities 5-9."""
    return f"{DURABLE_QUEUE_PREFIX}{model}.{version}{HIGH_SUFFIX if high else ''}"


def sync_queue(model: str, version: str) -> str:
    """The fast lane (transient classic queue with priorities) of a model version."""
    return f"{SYNC_QUEUE_PREFIX}{model}.{version}"


def dead_letter_queue(model: str) -> str:
    """The dead-letter queue of a model (all versions)."""
    return DEAD_LETTER_QUEUE_PREFIX + model


def delay_queue(model: str, version: str, delay_ms: int) -> str:
    """The delay lane queue of a model version whose tasks wait ``delay_ms`` (a bucket of
    ``DELAY_BUCKETS_MS``) before going back to their durable lane."""
    return f"{DELAY_PREFIX}{model}.{version}.{delay_ms}"


def delay_exchange(delay_ms: int) -> str:
    """The direct exchange a retried task is published to, with its durable lane's name as
    routing key, to wait ``delay_ms``: it routes to that version's delay queue of that delay."""
    return f"{DELAY_PREFIX}{delay_ms}"


def delay_queues(model: str, version: str) -> tuple[str, ...]:
    """Every delay queue a worker of a model version may declare (for clean-up tools)."""
    return tuple(delay_queue(model, version, delay) for delay in DELAY_BUCKETS_MS)


def declared_queues(model: str, version: str) -> tuple[str, ...]:
    """``model_queues`` and ``delay_queues``: every queue a worker of a model version may declare
    (what a clean-up deletes)."""
    return (*model_queues(model, version), *delay_queues(model, version))


def legacy_queue(model: str) -> str:
    """The classic queue earlier releases used for every task of ``model``."""
    return LEGACY_QUEUE_PREFIX + model


def model_queues(model: str, version: str) -> tuple[str, ...]:
    """Every queue of a model version, plus the model's dead letters (for clean-up tools)."""
    return (
        durable_queue(model, version),
        durable_queue(model, version, high=True),
        sync_queue(model, version),
        dead_letter_queue(model),
    )


def result_key(task_id: str) -> str:
    """Return the Redis key of the result of ``task_id``."""
    return RESULT_KEY_PREFIX + task_id


def task_key(task_id: str) -> str:
    """Return the Redis key of the gateway's record of ``task_id``."""
    return TASK_KEY_PREFIX + task_id


def running_key(task_id: str) -> str:
    """Return the Redis key a worker sets when it starts an asynchronous task."""
    return RUNNING_KEY_PREFIX + task_id


def events_key(task_id: str) -> str:
    """Return the Redis key of the event stream of ``task_id``."""
    return EVENTS_KEY_PREFIX + task_id


def queue_counts_key(model: str, version: str) -> str:
    """Return the Redis key of a version's submitted and started counts (positions)."""
    return f"{QUEUE_COUNTS_PREFIX}{model}:{version}"


def callback_key(task_id: str) -> str:
    """Return the Redis key of the callback delivery state of ``task_id``."""
    return CALLBACK_KEY_PREFIX + task_id


def stats_key(model: str, version: str) -> str:
    """Return the Redis key of the statistics hash of a model version (``conveyor.stats``)."""
    return f"{STATS_KEY_PREFIX}{model}:{version}"


def chunk_channel(gateway_id: str) -> str:
    """Return the pub/sub channel of the streamed pieces of gateway instance ``gateway_id``."""
    return CHUNK_CHANNEL_PREFIX + gateway_id


def stop_key(task_id: str) -> str:
    """Return the Redis key that asks the worker to stop streaming ``task_id``."""
    return STOP_KEY_PREFIX + task_id


def streamed_key(task_id: str) -> str:
    """Return the Redis key marking that a run of ``task_id`` has streamed a piece."""
    return STREAMED_KEY_PREFIX + task_id


def reply_channel(gateway_id: str) -> str:
    """Return the pub/sub channel of gateway instance ``gateway_id``."""
    return REPLY_CHANNEL_PREFIX + gateway_id
