"""The callbacks due, in Redis: what every gateway's ``CallbackDelivery`` takes work from.

- The stream ``conveyor:callbacks`` (``CALLBACKS_STREAM``): one entry per callback due, fields
  ``task_id``, ``url``, ``status`` (done, failed, cancelled) and, for a retry, ``attempts``
  (deliveries tried so far; absent: none). The script that stores a task's final result
  appends it (``conveyor.results``). The gateways read it as one consumer group
  (``conveyor-callbacks``), each under a name of its own, so an entry goes to one of them and
  stays in the group's pending list until that gateway settles it.
- The retry lane, a sorted set ``conveyor:callbacks:retry``: a callback that failed and may be
  tried again waits there, the member its entry as JSON with its ``attempts``, the score the
  Unix time in milliseconds when it is due. ``move_due`` puts the due ones back in the stream.
- Each task's delivery state, a hash ``conveyor:callback:<task_id>`` (``callback_key``): ``url``,
  ``state`` (pending, delivered, undeliverable), ``attempts``, ``last_error``,
  ``delivered_unix_ms``, ``next_attempt_unix_ms`` (while a retry is scheduled); all strings,
  expiring with the task's result (``RESULT_TTL``, refreshed on each write).

Every move is one script, so no crash loses or duplicates an entry: settling an attempt
acknowledges and deletes the stream entry, writes the state and, for a retry, adds it to the
lane, at once; moving a due retry adds it to the stream and removes it from the lane at once.
A settle whose acknowledgement finds nothing pending (another gateway claimed the entry and
settled it first) changes nothing. An entry whose gateway died stays pending in the group until
another one claims it (``claim``, ``XAUTOCLAIM``) and delivers it again.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal, cast

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from conveyor.protocol import (
    CALLBACK_KEY_PREFIX,
    CALLBACKS_STREAM,
    events_key,
    result_key,
    task_key,
)

__all__ = [
    "GROUP",
    "RETRY_KEY",
    "Callback",
    "Entry",
    "Outbox",
    "SettledState",
]

logger = logging.getLogger(__name__)

GROUP: Final = "conveyor-callbacks"
"""The consumer group of every gateway on ``CALLBACKS_STREAM``."""

RETRY_KEY: Final = "conveyor:callbacks:retry"
"""The retry lane: a sorted set of the callbacks waiting to be tried again."""

_OUTLIVE_SECONDS: Final = 600
"""How long a task's keys are kept beyond its callback's next attempt, so the attempt can read
the task: a schedule longer than ``RESULT_TTL`` extends the task instead of losing it."""

SettledState = Literal["pending", "delivered", "undeliverable"]

# KEYS: stream, state hash, retry lane, the task's result, record and events. ARGV: group,
# entry id, state, attempts, last error, url, delivered ms, next attempt ms (the retry's score),
# ttl, retry member, seconds the task must outlive a retry by (its keys are extended to that).
_SETTLE = """
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[2], 'url', ARGV[6], 'state', ARGV[3], 'attempts', ARGV[4])
if ARGV[5] ~= '' or redis.call('HEXISTS', KEYS[2], 'last_error') == 0 then
  redis.call('HSET', KEYS[2], 'last_error', ARGV[5])
end
if ARGV[3] == 'delivered' then
  redis.call('HSET', KEYS[2], 'delivered_unix_ms', ARGV[7])
end
if ARGV[3] == 'pending' then
  redis.call('HSET', KEYS[2], 'next_attempt_unix_ms', ARGV[8])
  redis.call('ZADD', KEYS[3], ARGV[8], ARGV[10])
else
  redis.call('HDEL', KEYS[2], 'next_attempt_unix_ms')
end
redis.call('EXPIRE', KEYS[2], ARGV[9])
if ARGV[3] == 'pending' then
  for i = 2, #KEYS do
    if i ~= 3 then redis.call('EXPIRE', KEYS[i], ARGV[11], 'GT') end
  end
end
return 1
"""

# KEYS: stream. ARGV: group, entry id. An entry that cannot be delivered at all.
_DROP = """
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return 1
"""

# KEYS: retry lane, stream. ARGV: now (ms), most members to move.
_MOVE_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, member in ipairs(due) do
  local ok, entry = pcall(cjson.decode, member)
  if ok and type(entry) == 'table' then
    redis.call('XADD', KEYS[2], '*', 'task_id', tostring(entry.task_id), 'url',
               tostring(entry.url), 'status', tostring(entry.status), 'attempts',
               tostring(entry.attempts))
  end
  redis.call('ZREM', KEYS[1], member)
end
return #due
"""

# KEYS: stream. ARGV: group, idle ms, the caller's own consumer name, '1' to forget only that
# one. Forgets consumers that hold nothing pending and were idle that long: gateways that
# stopped (a name per process) would otherwise pile up in the group.
_FORGET_CONSUMERS = """
local forgotten = 0
for _, consumer in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local info = {}
  for i = 1, #consumer, 2 do info[consumer[i]] = consumer[i + 1] end
  local own = info['name'] == ARGV[3]
  if info['pending'] == 0 and tonumber(info['idle']) >= tonumber(ARGV[2])
     and (own == (ARGV[4] == '1')) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], info['name'])
    forgotten = forgotten + 1
  end
end
return forgotten
"""


@dataclass(frozen=True)
class Callback:
    """One callback due: POST the final status (``done``, ``failed``, ``cancelled``) of
    ``task_id`` to ``url``; ``attempts`` were made before."""

    task_id: str
    url: str
    status: str
    attempts: int = 0

    @classmethod
    def from_fields(cls, fields: Mapping[bytes, bytes]) -> Callback:
        """The callback of a stream entry's fields; ``ValueError`` if they are not one."""
        try:
            task_id = fields[b"task_id"].decode()
            url = fields[b"url"].decode()
            status = fields[b"status"].decode()
            attempts = int(fields.get(b"attempts", b"0"))
        except (KeyError, UnicodeDecodeError) as e:
            raise ValueError(f"not a callback entry: {e}") from e
        if not task_id or not url or not status or attempts < 0:
            raise ValueError("not a callback entry: an empty field")
        return cls(task_id, url, status, attempts)

    def member(self) -> str:
        """The callback as a member of the retry lane (JSON)."""
        return json.dumps(
            {"task_id": self.task_id, "url": self.url, "status": self.status,
             "attempts": self.attempts},
            separators=(",", ":"),
        )  # fmt: skip


@dataclass(frozen=True)
class Entry:
    """A stream entry handed to this consumer: its id and its callback (None: malformed)."""

    id: str
    callback: Callback | None


_RawEntries = list[tuple[bytes, dict[bytes, bytes]]]


def _entries(raw: _RawEntries) -> list[Entry]:
    entries = []
    for entry_id, fields in raw:
        ident = entry_id.decode()
        try:
            callback: Callback | None = Callback.from_fields(fields or {})
        except ValueError:
            callback = None
        entries.append(Entry(ident, callback))
    return entries


class Outbox:
    """The stream, the retry lane and the state hashes, as one consumer (``consumer``) of the
    group sees them. The keys default to the protocol's (tests pass keys of their own)."""

    def __init__(
        self,
        redis: aioredis.Redis,
        consumer: str,
        state_ttl: int,
        *,
        stream: str = CALLBACKS_STREAM,
        retry_key: str = RETRY_KEY,
        state_prefix: str = CALLBACK_KEY_PREFIX,
        group: str = GROUP,
    ) -> None:
        """``state_ttl``: seconds a state hash lives after its last write."""
        self.redis = redis
        self.consumer = consumer
        self.stream = stream
        self.retry_key = retry_key
        self.group = group
        self._state_prefix = state_prefix
        self._state_ttl = state_ttl
        self._settle = redis.register_script(_SETTLE)
        self._drop = redis.register_script(_DROP)
        self._move_due = redis.register_script(_MOVE_DUE)
        self._forget = redis.register_script(_FORGET_CONSUMERS)
        self._claim_cursor = "0-0"

    def state_key(self, task_id: str) -> str:
        """The delivery state hash of ``task_id``."""
        return self._state_prefix + task_id

    async def ensure_group(self) -> None:
        """Create the group (and the stream) unless it exists; a new group starts with the
        entries already in the stream, so none written before it are skipped."""
        try:
            await self.redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise

    async def read(self, count: int, block_ms: int) -> list[Entry]:
        """Up to ``count`` entries no consumer got yet, waiting up to ``block_ms`` for one."""
        answer = cast(
            list[tuple[bytes, _RawEntries]] | None,
            await self.redis.xreadgroup(
                self.group, self.consumer, {self.stream: ">"}, count=count, block=block_ms
            ),
        )
        return [entry for _, raw in answer or [] for entry in _entries(raw)]

    async def claim(self, count: int, min_idle_ms: int) -> list[Entry]:
        """Up to ``count`` entries pending in the group for at least ``min_idle_ms`` (their
        consumer died or hangs), taken over by this one. Successive calls walk the pending
        list round; entries deleted meanwhile are left out (Redis forgets them)."""
        answer = await self.redis.xautoclaim(
            self.stream, self.group, self.consumer, min_idle_ms, self._claim_cursor, count=count
        )
        cursor, raw = answer[0], answer[1]
        self._claim_cursor = cursor.decode() if isinstance(cursor, bytes) else str(cursor)
        return _entries([item for item in raw if item and item[1] is not None])

    async def settle(
        self,
        entry: Entry,
        callback: Callback,
        state: SettledState,
        *,
        last_error: str = "",
        delivered_ms: int = 0,
        next_attempt_ms: int = 0,
    ) -> bool:
        """Acknowledge and delete the stream entry and write the state after an attempt, with
        ``callback.attempts`` counting it; ``pending`` also puts the callback in the retry lane,
        due at ``next_attempt_ms``. False when the entry was no longer pending (another
        consumer settled it): nothing changes then."""
        outlive = max(0, next_attempt_ms - int(time.time() * 1000)) // 1000 + _OUTLIVE_SECONDS
        settled = await self._settle(
            keys=[
                self.stream,
                self.state_key(callback.task_id),
                self.retry_key,
                result_key(callback.task_id),
                task_key(callback.task_id),
                events_key(callback.task_id),
            ],
            args=[
                self.group,
                entry.id,
                state,
                callback.attempts,
                last_error,
                callback.url,
                delivered_ms,
                next_attempt_ms,
                self._state_ttl,
                callback.member(),
                outlive,
            ],
        )
        return bool(settled)

    async def drop(self, entry: Entry) -> None:
        """Acknowledge and delete an entry that cannot be delivered (malformed, or its task
        expired)."""
        await self._drop(keys=[self.stream], args=[self.group, entry.id])

    async def move_due(self, now_ms: int, limit: int = 100) -> int:
        """Put up to ``limit`` retries due by ``now_ms`` back in the stream; answers how many."""
        return int(await self._move_due(keys=[self.retry_key, self.stream], args=[now_ms, limit]))

    async def forget_idle_consumers(self, min_idle_ms: int) -> int:
        """Remove from the group the other consumers with nothing pending, idle that long."""
        return int(
            await self._forget(
                keys=[self.stream], args=[self.group, min_idle_ms, self.consumer, ""]
            )
        )

    async def leave(self) -> bool:
        """Remove this consumer from the group if it holds nothing pending (a clean stop);
        entries it still holds stay for another consumer to claim."""
        forgotten = await self._forget(keys=[self.stream], args=[self.group, 0, self.consumer, "1"])
        return bool(forgotten)
