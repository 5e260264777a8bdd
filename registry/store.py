"""Registrations and liveness kept in Redis, so a registry restart loses nothing.

Per model: a hash of its versions' registrations, a hash of their schema fingerprints (set
once per version), a sorted set of live instances scored by expiry, which version each
instance serves, and which features each instance announced.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

import redis.asyncio as aioredis

from conveyor.protocol import version_key
from conveyor.registry_api import Registration
from registry.constants import (
    INSTANCE_FEATURES_HASH,
    INSTANCE_VERSIONS_HASH,
    INSTANCES_ZSET,
    MODELS_SET,
    SCHEMAS_HASH,
    VERSIONS_HASH,
)
from registry.exceptions import InstanceNotFound, ModelNotFound, SchemaConflict, VersionInUse

# KEYS: versions, schemas, models, instances, instance-versions, instance-features
# ARGV: version, fingerprint, registration JSON, name, now, expiry, instance id, features
#       (comma-joined; empty: none)
_REGISTER = """
local known = redis.call('HGET', KEYS[2], ARGV[1])
if known and known ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('SADD', KEYS[3], ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', ARGV[5])
redis.call('ZADD', KEYS[4], ARGV[6], ARGV[7])
redis.call('HSET', KEYS[5], ARGV[7], ARGV[1])
if ARGV[8] == '' then
  redis.call('HDEL', KEYS[6], ARGV[7])
else
  redis.call('HSET', KEYS[6], ARGV[7], ARGV[8])
end
return 1
"""


def fingerprint(registration: Registration) -> str:
    """What must not change within a version: the message types and their descriptor set.

    Not the features: they belong to each instance, and differ during a rolling upgrade.
    """
    parts = (registration.request_type, registration.response_type, registration.descriptor_set)
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


@dataclass(frozen=True)
class VersionRecord:
    """A stored version: its registration (without features), how many of its instances are
    alive, and the features every one of those announced (none when none is alive)."""

    registration: Registration
    instances: int
    features: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ModelRecord:
    """A stored model: its versions, ascending."""

    name: str
    versions: dict[str, VersionRecord]

    def ordered(self) -> list[str]:
        """The versions, lowest first (numeric parts compare as numbers)."""
        return sorted(self.versions, key=version_key)

    def default_version(self) -> str:
        """The highest live version, or the highest registered one when none is alive."""
        ordered = self.ordered()
        live = [v for v in ordered if self.versions[v].instances > 0]
        return (live or ordered)[-1]


def _now_ms() -> int:
    return int(time.time() * 1000)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _join_features(features: list[str]) -> str:
    """The features as stored: sorted, without repeats, comma-joined ('' for none)."""
    return ",".join(sorted(set(features)))


def _split_features(stored: bytes | str) -> frozenset[str]:
    return frozenset(f for f in _text(stored).split(",") if f)


def _by_version(live: list[str], served_by: dict[str, str]) -> dict[str, list[str]]:
    """The live instances grouped by the version they serve."""
    grouped: dict[str, list[str]] = {}
    for instance in live:
        version = served_by.get(instance)
        if version is not None:
            grouped.setdefault(version, []).append(instance)
    return grouped


def _common(instances: list[str], features: dict[str, frozenset[str]]) -> frozenset[str]:
    """The features every one of ``instances`` announced (none for no instance)."""
    if not instances:
        return frozenset()
    return frozenset.intersection(*(features.get(i, frozenset()) for i in instances))


class RegistryStore:
    """Model registrations by version, and instance liveness, in Redis."""

    def __init__(self, client: aioredis.Redis, key_prefix: str, liveness_window: float) -> None:
        self._redis = client
        self._prefix = key_prefix
        self._window_ms = int(liveness_window * 1000)
        self._register = client.register_script(_REGISTER)

    def _key(self, kind: str, name: str) -> str:
        return f"{self._prefix}{kind}{name}"

    async def register(self, name: str, instance_id: str, registration: Registration) -> None:
        """Store the version's registration and the instance's features, and mark the
        instance alive for one window.

        Raise ``SchemaConflict`` when the version is registered with another schema.
        """
        now = _now_ms()
        accepted = await self._register(
            keys=[
                self._key(VERSIONS_HASH, name),
                self._key(SCHEMAS_HASH, name),
                self._prefix + MODELS_SET,
                self._key(INSTANCES_ZSET, name),
                self._key(INSTANCE_VERSIONS_HASH, name),
                self._key(INSTANCE_FEATURES_HASH, name),
            ],
            args=[
                registration.version,
                fingerprint(registration),
                registration.model_dump_json(exclude={"features"}),  # the instance's, kept apart
                name,
                now,
                now + self._window_ms,
                instance_id,
                _join_features(registration.features),
            ],
        )
        if not accepted:
            raise SchemaConflict(
                f"version {registration.version!r} of {name!r} is registered with another "
                "schema; register the changed schema under a new version"
            )

    async def heartbeat(self, name: str, instance_id: str) -> None:
        """Extend the instance's liveness; raise ``InstanceNotFound`` if it already expired."""
        now = _now_ms()
        key = self._key(INSTANCES_ZSET, name)
        expiry = await self._redis.zscore(key, instance_id)
        if expiry is None or expiry < now:
            raise InstanceNotFound(f"instance {instance_id!r} of {name!r} is not registered")
        await self._redis.zadd(key, {instance_id: now + self._window_ms}, xx=True)

    async def deregister(self, name: str, instance_id: str) -> None:
        """Forget the instance; raise ``InstanceNotFound`` if it was not there."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zrem(self._key(INSTANCES_ZSET, name), instance_id)
            pipe.hdel(self._key(INSTANCE_VERSIONS_HASH, name), instance_id)
            pipe.hdel(self._key(INSTANCE_FEATURES_HASH, name), instance_id)
            removed, _, _ = await pipe.execute()
        if not removed:
            raise InstanceNotFound(f"instance {instance_id!r} of {name!r} is not registered")

    async def forget_version(self, name: str, version: str) -> None:
        """Remove a version with no live instance (e.g. to register a new schema under it)."""
        record = await self.get(name)
        if version not in record.versions:
            raise ModelNotFound(f"model {name!r} has no version {version!r}")
        if record.versions[version].instances:
            raise VersionInUse(
                f"version {version!r} of {name!r} has "
                f"{record.versions[version].instances} live instance(s)"
            )
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hdel(self._key(VERSIONS_HASH, name), version)
            pipe.hdel(self._key(SCHEMAS_HASH, name), version)
            await pipe.execute()
        if len(record.versions) == 1:
            await self._redis.srem(self._prefix + MODELS_SET, name)

    async def get(self, name: str) -> ModelRecord:
        """Return the model's record; raise ``ModelNotFound`` if it was never registered."""
        now = _now_ms()
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(self._key(VERSIONS_HASH, name))
            pipe.zrangebyscore(self._key(INSTANCES_ZSET, name), now, "+inf")
            pipe.hgetall(self._key(INSTANCE_VERSIONS_HASH, name))
            pipe.hgetall(self._key(INSTANCE_FEATURES_HASH, name))
            raw_versions, raw_live, served, announced = await pipe.execute()
        if not raw_versions:
            raise ModelNotFound(f"model {name!r} is not registered")
        served_by = {_text(k): _text(v) for k, v in served.items()}
        features = {_text(k): _split_features(v) for k, v in announced.items()}
        live = [_text(i) for i in raw_live]
        grouped = _by_version(live, served_by)
        versions: dict[str, VersionRecord] = {}
        for raw_version, raw in raw_versions.items():
            version = _text(raw_version)
            instances = grouped.get(version, [])
            versions[version] = VersionRecord(
                registration=Registration.model_validate_json(raw),
                instances=len(instances),
                features=_common(instances, features),
            )
        await self._prune(name, now, served_by, set(live))
        return ModelRecord(name=name, versions=versions)

    async def list(self) -> list[ModelRecord]:
        """Return every registered model, sorted by name."""
        names = sorted(_text(n) for n in await self._redis.smembers(self._prefix + MODELS_SET))
        records = []
        for name in names:
            try:
                records.append(await self.get(name))
            except ModelNotFound:
                continue
        return records

    async def _prune(self, name: str, now: int, served_by: dict[str, str], live: set[str]) -> None:
        """Forget instances whose liveness expired long ago (keeps the hashes small)."""
        gone = [instance for instance in served_by if instance not in live]
        if len(gone) < 16:
            return
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(self._key(INSTANCES_ZSET, name), "-inf", now)
            pipe.hdel(self._key(INSTANCE_VERSIONS_HASH, name), *gone)
            pipe.hdel(self._key(INSTANCE_FEATURES_HASH, name), *gone)
            await pipe.execute()
