"""Statistics of each model version, as its workers report them; the gateway reads them for the
protocol's statistics extension (``GET /v2/models/{m}/stats``).

Each model version has one Redis hash, ``conveyor:stats:<model>:<version>``
(``conveyor.protocol.stats_key``), summed over every worker of the version. It has no TTL, so it
outlives worker and gateway restarts; deleting it starts the version's statistics again. Its
fields are integers that only grow (``last_inference_ms`` aside); a field never written reads 0:

- ``success_count``, ``success_ns``: requests answered with a response; their queue plus
  compute time.
- ``fail_count``, ``fail_ns``: requests answered with an error (the model's, or a deadline that
  passed before a worker took them); their queue plus compute time (the wait alone when the
  model never ran).
- ``queue_count``, ``queue_ns``: successful requests; their time from the gateway creating the
  task (``Task.created_unix_ms``) to a worker starting the model on it.
- ``compute_infer_count``, ``compute_infer_ns``: successful requests; the model's own time (a
  batch's whole call, for each request in it).
- ``compute_input_count``/``_ns``, ``compute_output_count``/``_ns``: decoding and encoding
  around the model, for workers that measure them apart (the Python base does not).
- ``inference_count``: successful requests; ``execution_count``: model calls that answered at
  least one request successfully (a batch is one call).
- ``last_inference_ms``: Unix milliseconds of the latest answered request; replaced when a
  later one is reported, not added.

As in Triton, queue and compute count successful requests only: a failed one counts in ``fail``.

Workers add (``HINCRBY``) in the pipeline that stores their results
(``ResultBackend.store_many``): a ``StatsTally`` adds up the tasks answered since its last
write, and ``ADD_SCRIPT`` writes them all in one command. A flush carries them only when the
last write is ``STATS_PERIOD`` old or more; when it is younger, a write on its own follows
within ``STATS_PERIOD``. So the statistics cost a busy worker at most one command per period,
however many flushes it makes, and trail its results by at most that period.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from conveyor.protocol import stats_key
from proto import task_pb2

__all__ = [
    "DURATIONS",
    "LAST_INFERENCE",
    "STATS_PERIOD",
    "StatsDelta",
    "StatsReader",
    "StatsTally",
]

DURATIONS: Final = (
    "success",
    "fail",
    "queue",
    "compute_input",
    "compute_infer",
    "compute_output",
)
"""Each is two fields, ``<name>_count`` and ``<name>_ns``."""

LAST_INFERENCE: Final = "last_inference_ms"

STATS_PERIOD: Final = 0.02
"""Seconds between two writes of one worker's statistics, at least (see the module's doc)."""

_NS_PER_MS: Final = 1_000_000

_TALLIED: Final = (
    "success_count",
    "success_ns",
    "queue_count",
    "queue_ns",
    "compute_infer_count",
    "compute_infer_ns",
    "inference_count",
    "execution_count",
    "fail_count",
    "fail_ns",
)
"""The fields a ``StatsTally`` adds to, in the order of its sums."""

ADD_SCRIPT: Final = """
for i = 1, #ARGV - 1, 2 do redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) end
local last = tonumber(redis.call('HGET', KEYS[1], 'last_inference_ms') or '0') or 0
if tonumber(ARGV[#ARGV]) > last then
  redis.call('HSET', KEYS[1], 'last_inference_ms', ARGV[#ARGV])
end
return 1
"""
"""Adds a delta to a version's hash (KEYS[1]): ARGV is field, amount, field, amount, ..., then
the delta's ``last_inference_ms``, which replaces the stored one when later. One command for the
whole delta (a pipeline pays per command)."""


@dataclass
class StatsDelta:
    """What one write adds to a version's hash. ``written`` is set once Redis has run it, so a
    flush that is stored again (Redis answered an error, or too few replicas confirmed) does
    not add it twice."""

    key: str
    increments: dict[str, int]
    last_inference_ms: int
    written: bool = False

    def queue_onto(self, pipe: Pipeline) -> int:
        """Add this delta to a redis-py pipeline (``ADD_SCRIPT``, by ``EVAL``: no script to
        load first, none Redis can forget); return how many commands were added (1)."""
        pairs = [part for item in self.increments.items() for part in item]
        pipe.eval(ADD_SCRIPT, 1, self.key, *pairs, self.last_inference_ms)
        return 1

    async def write(self, client: aioredis.Redis) -> None:
        """Add this delta on its own (one round trip), unless it was written already; raises
        ``redis.RedisError`` or ``OSError`` when Redis cannot be reached."""
        if self.written:
            return
        async with client.pipeline(transaction=False) as pipe:
            self.queue_onto(pipe)
            await pipe.execute()
        self.written = True


class StatsTally:
    """One worker's statistics for its model version since they were last taken to be written.

    ``record`` runs on the hot path after each model call (a few additions per task); ``take``
    hands what was recorded to a write: the next store of results, or a write on its own.
    """

    def __init__(self, model: str, version: str) -> None:
        self.key = stats_key(model, version)
        self._sums = [0] * len(_TALLIED)
        self._last_ms = 0
        self._taken_at = -math.inf

    @property
    def pending(self) -> bool:
        """True when tasks were recorded since the last ``take``."""
        return self._last_ms > 0

    def record(
        self,
        tasks: Sequence[task_pb2.Task],
        results: Sequence[task_pb2.TaskResult],
        ran: Sequence[int],
        *,
        started_ns: int,
        compute_ns: int,
        finished_ns: int,
        one_call: bool,
    ) -> None:
        """Count the answered ``tasks``: those at indexes ``ran`` went to the model, started at
        Unix ``started_ns`` and took ``compute_ns`` (all of them in one call when ``one_call``,
        else one call each); the others were answered without it (their deadline had passed).
        ``finished_ns`` is the Unix time of the answers."""
        if not tasks:
            return
        everyone_ran = len(ran) == len(tasks)
        ran_set = frozenset() if everyone_ran else frozenset(ran)
        succeeded = success_ns = queue_ns = failed = fail_ns = 0
        for i, (task, result) in enumerate(zip(tasks, results, strict=True)):
            created_ns = task.created_unix_ms * _NS_PER_MS
            if everyone_ran or i in ran_set:
                queue = max(started_ns - created_ns, 0) if created_ns else 0
                total = queue + compute_ns
            else:
                queue = 0
                total = max(finished_ns - created_ns, 0) if created_ns else 0
            if result.WhichOneof("outcome") == "response":
                succeeded += 1
                success_ns += total
                queue_ns += queue
            else:
                failed += 1
                fail_ns += total
        sums = self._sums  # in the order of _TALLIED
        sums[0] += succeeded
        sums[1] += success_ns
        sums[2] += succeeded
        sums[3] += queue_ns
        sums[4] += succeeded
        sums[5] += succeeded * compute_ns
        sums[6] += succeeded
        sums[7] += (1 if succeeded else 0) if one_call else succeeded
        sums[8] += failed
        sums[9] += fail_ns
        self._last_ms = max(self._last_ms, finished_ns // _NS_PER_MS)

    def take(self, now: float = math.inf, every: float = 0.0) -> StatsDelta | None:
        """What was recorded since the last ``take``, now cleared; None when nothing was, or
        when the last ``take`` was less than ``every`` seconds before ``now`` (monotonic)."""
        if not self._last_ms or now - self._taken_at < every:
            return None
        increments = {field: sum_ for field, sum_ in zip(_TALLIED, self._sums, strict=True) if sum_}
        delta = StatsDelta(self.key, increments, self._last_ms)
        self._sums = [0] * len(_TALLIED)
        self._last_ms = 0
        if now != math.inf:
            self._taken_at = now
        return delta


class StatsReader:
    """Reads versions' statistics hashes (the gateway's side)."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._redis = client

    async def read(self, versions: Sequence[tuple[str, str]]) -> list[dict[str, int]]:
        """The fields of each ``(model, version)``'s hash, in one round trip (a version no
        worker reported on yet: ``{}``). Raises ``redis.RedisError`` or ``OSError`` when Redis
        cannot be reached."""
        if not versions:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for model, version in versions:
                pipe.hgetall(stats_key(model, version))
            hashes: list[dict[Any, Any]] = await pipe.execute()
        return [_integers(fields) for fields in hashes]


def _integers(fields: dict[Any, Any]) -> dict[str, int]:
    """A hash's fields as integers; a value that is not one (a foreign writer's) is left out."""
    counts: dict[str, int] = {}
    for name, value in fields.items():
        try:
            counts[name.decode() if isinstance(name, bytes) else str(name)] = int(value)
        except (TypeError, ValueError):
            continue
    return counts
