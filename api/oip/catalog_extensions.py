"""The gateway's ``ExtensionsView``: the protocol's extensions from the model catalog (what the
registry knows) and the statistics the workers keep in Redis (``conveyor.stats``).

Every registered version is served (version policy ``all``): a request without a version goes
to the highest live one, any other registered version can be named.

A model whose every tensor, in and out, is declared (``api.oip.tensors``) is configured as
Triton would configure it: with a leading ``-1`` on every tensor (the model's own batch
dimension) in the batching form, ``max_batch_size`` ``UNBOUNDED_BATCH`` and the dims without
that ``-1``; else ``max_batch_size`` 0 and the full dims. Any other model keeps its full shapes
and the batch size its workers registered (a request to it holds one item, or a batch of one).
"""

from collections.abc import Sequence
from dataclasses import replace
from typing import Final, Protocol

from redis.exceptions import RedisError

from api.exceptions import ServiceUnavailable
from api.oip.extensions import (
    Duration,
    IndexEntry,
    ModelConfiguration,
    VersionPolicy,
    VersionStatistics,
)
from api.oip.ports import ModelView
from api.oip.routes import PLATFORM
from api.oip.tensors import mapping_for
from conveyor.registry_api import ModelSummary

__all__ = ["Extensions", "StatsSource"]

READY = "READY"
UNAVAILABLE = "UNAVAILABLE"

UNBOUNDED_BATCH: Final = 2**31 - 1
"""``max_batch_size`` of a model batching along its declared tensors' leading ``-1``: the
gateway bounds such a batch only by the request's size (the largest 32-bit count)."""


class BatchingModel(ModelView, Protocol):
    """A model version with the batch size its workers registered (``api.catalog.ModelInfo``)."""

    @property
    def max_batch_size(self) -> int:
        """The most tasks one model call runs; 0 when the workers do not batch."""
        ...


class ExtensionCatalog(Protocol):
    """What the extensions ask of the catalog (``api.catalog.ModelCatalog``)."""

    async def get(self, name: str, version: str | None = None) -> BatchingModel:
        """Resolve a model version; raise ``ModelNotFound`` or ``RegistryUnavailable``."""
        ...

    async def list(self) -> list[ModelSummary]:
        """Every registered model with its versions; raise ``RegistryUnavailable``."""
        ...


class StatsSource(Protocol):
    """The workers' statistics (``conveyor.stats.StatsReader``)."""

    async def read(self, versions: Sequence[tuple[str, str]]) -> list[dict[str, int]]:
        """Each ``(model, version)``'s counters by field name; raise ``redis.RedisError`` or
        ``OSError`` when the store cannot be reached."""
        ...


class Extensions:
    """Statistics, configuration and repository index of the registered models."""

    def __init__(self, catalog: ExtensionCatalog, stats: StatsSource) -> None:
        self._catalog = catalog
        self._stats = stats

    async def statistics(
        self, name: str | None = None, version: str | None = None
    ) -> list[VersionStatistics]:
        """Every version of every model when ``name`` is None; of one model (or one version)
        otherwise. A version no worker reported on yet has zero counts."""
        versions: list[tuple[str, str]]
        if name is None:
            versions = [(m.name, v.version) for m in await self._catalog.list() for v in m.versions]
        elif version is None:
            info = await self._catalog.get(name)
            versions = [(info.name, v) for v in info.versions]
        else:
            info = await self._catalog.get(name, version)
            versions = [(info.name, info.version)]
        try:
            counts = await self._stats.read(versions)
        except (RedisError, OSError) as e:
            raise ServiceUnavailable(
                f"Redis is unreachable: {type(e).__name__}", dependency="redis", model=name
            ) from e
        return [_statistics(m, v, c) for (m, v), c in zip(versions, counts, strict=True)]

    async def configuration(self, name: str, version: str | None = None) -> ModelConfiguration:
        """The configuration of a model version (the default version when None): its tensors
        from the descriptors, the batch size its workers registered."""
        info = await self._catalog.get(name, version)
        inputs = mapping_for(info.request_class.DESCRIPTOR).specs
        outputs = mapping_for(info.response_class.DESCRIPTOR).specs
        max_batch_size = info.max_batch_size
        specs = (*inputs, *outputs)
        if specs and all(spec.declared for spec in specs):
            max_batch_size = 0
            if all(spec.shape[:1] == (-1,) for spec in specs):
                max_batch_size = UNBOUNDED_BATCH
                inputs = [replace(spec, shape=spec.shape[1:]) for spec in inputs]
                outputs = [replace(spec, shape=spec.shape[1:]) for spec in outputs]
        return ModelConfiguration(
            name=info.name,
            version=info.version,
            platform=PLATFORM,
            backend="",
            max_batch_size=max_batch_size,
            inputs=inputs,
            outputs=outputs,
            version_policy=VersionPolicy(all=True),
        )

    async def repository_index(self, ready_only: bool = False) -> list[IndexEntry]:
        """Every registered model version, sorted by name then version (numeric parts as
        numbers, as the registry orders them): ``READY`` with a live worker, else
        ``UNAVAILABLE``; only the ready ones when ``ready_only``."""
        entries = [
            IndexEntry(m.name, v.version, READY)
            if v.status == "alive"
            else IndexEntry(m.name, v.version, UNAVAILABLE, "no live worker")
            for m in sorted(await self._catalog.list(), key=lambda m: m.name)
            for v in m.versions
        ]
        return [e for e in entries if e.state == READY] if ready_only else entries


def _statistics(name: str, version: str, counts: dict[str, int]) -> VersionStatistics:
    def duration(kind: str) -> Duration:
        return Duration(counts.get(f"{kind}_count", 0), counts.get(f"{kind}_ns", 0))

    return VersionStatistics(
        name=name,
        version=version,
        last_inference_ms=counts.get("last_inference_ms", 0),
        inference_count=counts.get("inference_count", 0),
        execution_count=counts.get("execution_count", 0),
        success=duration("success"),
        fail=duration("fail"),
        queue=duration("queue"),
        compute_input=duration("compute_input"),
        compute_infer=duration("compute_infer"),
        compute_output=duration("compute_output"),
    )
