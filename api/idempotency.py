"""Idempotent asynchronous submits: the same ``Idempotency-Key`` and body make one task.

A client that retries an async submit (a timeout, a dropped connection) sends the same
``Idempotency-Key``. The first submit with a key claims it in Redis with ``SET NX`` (atomic, so
two gateways racing on one key agree on one winner), storing the request's fingerprint and the
task id it will publish under; every later submit with that key within ``IDEMPOTENCY_TTL``
answers the first one's 202 (same ``task_id``) when its fingerprint matches, and a 422 naming
the conflict when it does not. A claim whose submit fails is released, so a retry can make the
task.

The fingerprint is SHA-256 over the model, the version asked for (empty: the default), the
priority, the callback URL, the retries asked for and the serialized request message: two
bodies that differ only in JSON spacing or key order are the same request.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Final

import redis.asyncio as aioredis

from api.exceptions import InvalidRequest

__all__ = ["HEADER", "Claim", "IdempotencyKeys", "check_key", "fingerprint"]

HEADER: Final = "idempotency-key"
MAX_KEY_LENGTH: Final = 255
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
_PREFIX: Final = "conveyor:idem:"


def check_key(key: str, model: str) -> None:
    """Raise ``InvalidRequest`` (422, field ``Idempotency-Key``) unless ``key`` is 1 to 255
    visible ASCII characters."""
    if not _KEY.match(key):
        raise InvalidRequest(
            f"an Idempotency-Key is 1 to {MAX_KEY_LENGTH} visible ASCII characters (no spaces)",
            model=model,
            field="Idempotency-Key",
        )


def fingerprint(
    model: str, version: str | None, priority: int, payload: bytes, *options: str
) -> str:
    """What makes two submits the same request (see the module doc); ``options``: the submit's
    other choices (its callback URL, its retries), each part of the request."""
    digest = hashlib.sha256()
    parts = (model, version or "", str(priority), *options)
    for part in (p.encode() for p in parts):
        digest.update(len(part).to_bytes(4, "big"))
        digest.update(part)
    digest.update(payload)
    return digest.hexdigest()


@dataclass(frozen=True)
class Claim:
    """The outcome of claiming a key: ``first`` when this submit made the claim (publish the
    task under ``task_id``); else the earlier submit's ``task_id`` and ``version``."""

    first: bool
    task_id: str
    version: str


class IdempotencyKeys:
    """The keys of async submits, in Redis (``conveyor:idem:<sha256 of the key>``)."""

    def __init__(self, redis: aioredis.Redis, ttl_seconds: int) -> None:
        self._redis = redis
        self._ttl = ttl_seconds

    async def claim(
        self, key: str, fingerprint: str, task_id: str, version: str, model: str
    ) -> Claim:
        """Claim ``key`` for a new task, or return the task an earlier submit made with it.

        Raises ``InvalidRequest`` (422) when the key was used with another request, and
        redis-py's errors when Redis cannot be reached.
        """
        name = _name(key)
        value = f"{fingerprint}|{task_id}|{version}"
        if await self._redis.set(name, value, nx=True, ex=self._ttl):
            return Claim(True, task_id, version)
        stored = await self._redis.get(name)
        if stored is None:  # expired between the two calls: claim it again
            return await self.claim(key, fingerprint, task_id, version, model)
        text = stored.decode() if isinstance(stored, bytes) else str(stored)
        earlier, earlier_task, earlier_version = text.split("|", 2)
        if earlier != fingerprint:
            raise InvalidRequest(
                f"this Idempotency-Key was used for another request (task {earlier_task}): "
                "a key names one request; use a new key for a new request",
                model=model,
                field="Idempotency-Key",
            )
        return Claim(False, earlier_task, earlier_version)

    async def release(self, key: str, task_id: str) -> None:
        """Forget ``key`` if it still names ``task_id`` (its submit failed)."""
        name = _name(key)
        stored = await self._redis.get(name)
        if stored is not None:
            text = stored.decode() if isinstance(stored, bytes) else str(stored)
            if text.split("|", 2)[1] == task_id:
                await self._redis.delete(name)


def _name(key: str) -> str:
    return _PREFIX + hashlib.sha256(key.encode()).hexdigest()
