"""Registrations and liveness kept in Redis, so a registry restart loses nothing."""

import json
import time
from dataclasses import dataclass

import redis.asyncio as aioredis

from conveyor.registry_api import Registration
from registry.constants import INSTANCES_ZSET, MODEL_HASH, MODELS_SET
from registry.exceptions import InstanceNotFound, ModelNotFound


@dataclass(frozen=True)
class ModelRecord:
    """A stored model registration with its current number of live instances."""

    name: str
    registration: Registration
    instances: int


def _now_ms() -> int:
    return int(time.time() * 1000)


class RegistryStore:
    """Model registrations (hashes) and instance liveness (sorted sets scored by expiry)."""

    def __init__(self, client: "aioredis.Redis", key_prefix: str, liveness_window: float) -> None:
        self._redis = client
        self._prefix = key_prefix
        self._window_ms = int(liveness_window * 1000)

    def _model_key(self, name: str) -> str:
        return f"{self._prefix}{MODEL_HASH}{name}"

    def _instances_key(self, name: str) -> str:
        return f"{self._prefix}{INSTANCES_ZSET}{name}"

    async def register(self, name: str, instance_id: str, registration: Registration) -> None:
        """Store the model's registration and mark the instance alive for one window."""
        now = _now_ms()
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._model_key(name), mapping={"json": registration.model_dump_json()})
            pipe.sadd(self._prefix + MODELS_SET, name)
            pipe.zremrangebyscore(self._instances_key(name), "-inf", now)
            pipe.zadd(self._instances_key(name), {instance_id: now + self._window_ms})
            await pipe.execute()

    async def heartbeat(self, name: str, instance_id: str) -> None:
        """Extend the instance's liveness; raise ``InstanceNotFound`` if it already expired."""
        now = _now_ms()
        expiry = await self._redis.zscore(self._instances_key(name), instance_id)
        if expiry is None or expiry < now:
            raise InstanceNotFound(f"instance {instance_id!r} of {name!r} is not registered")
        await self._redis.zadd(
            self._instances_key(name), {instance_id: now + self._window_ms}, xx=True
        )

    async def deregister(self, name: str, instance_id: str) -> None:
        """Forget the instance; raise ``InstanceNotFound`` if it was not there."""
        if not await self._redis.zrem(self._instances_key(name), instance_id):
            raise InstanceNotFound(f"instance {instance_id!r} of {name!r} is not registered")

    async def get(self, name: str) -> ModelRecord:
        """Return the model's record; raise ``ModelNotFound`` if it was never registered."""
        raw = await self._redis.hget(self._model_key(name), "json")
        if raw is None:
            raise ModelNotFound(f"model {name!r} is not registered")
        registration = Registration.model_validate(json.loads(raw))
        live = await self._redis.zcount(self._instances_key(name), _now_ms(), "+inf")
        return ModelRecord(name=name, registration=registration, instances=int(live))

    async def list(self) -> list[ModelRecord]:
        """Return every registered model, sorted by name."""
        names = sorted(
            n.decode() if isinstance(n, bytes) else str(n)
            for n in await self._redis.smembers(self._prefix + MODELS_SET)
        )
        records = []
        for name in names:
            try:
                records.append(await self.get(name))
            except ModelNotFound:
                continue
        return records
