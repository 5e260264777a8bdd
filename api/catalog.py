"""What the gateway knows about models: learned from the registry, cached briefly.

A live model version is served from the cache for ``cache_seconds``; while the registry is
unreachable, the last known description is used (and a warning logged once), so a registry
restart does not interrupt serving.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import logging
import time
from dataclasses import dataclass

from google.protobuf.message import Message

from api.exceptions import InvalidRequest, ModelNotFound, RegistryUnavailable
from conveyor.descriptors import load_pool, message_class
from conveyor.errors import ModelNotRegistered, RegistryClientError, SchemaError
from conveyor.protocol import TASK_BATCH_FEATURE, valid_model_name, valid_version
from conveyor.registry_api import MessageSchema, ModelDetail, ModelSummary
from conveyor.registry_client import RegistryClient

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelInfo:
    """A model version as the gateway uses it: liveness, message classes built at run time,
    the features every live instance of the version announced, and the most tasks its workers
    run in one model call (0: they do not batch)."""

    name: str
    version: str
    versions: tuple[str, ...]
    instances: int
    request_class: type[Message]
    response_class: type[Message]
    features: frozenset[str] = frozenset()
    max_batch_size: int = 0

    @property
    def alive(self) -> bool:
        """True when at least one instance of this version is alive."""
        return self.instances > 0

    @property
    def packs_tasks(self) -> bool:
        """True when every live instance of this version unpacks ``TaskBatch`` messages, so
        the gateway may pack its synchronous tasks (an older worker would reject them)."""
        return TASK_BATCH_FEATURE in self.features


def check_name(name: str, version: str | None = None) -> None:
    """Raise ``InvalidRequest`` for a model name or version outside the documented patterns."""
    if not valid_model_name(name):
        raise InvalidRequest(
            "a model name is 1-100 letters, digits, '_' or '-', starting with a letter or digit",
            field="model",
        )
    if version is not None and not valid_version(version):
        raise InvalidRequest(
            "a version is 1-32 letters, digits, '_', '.' or '-', starting with a letter or digit",
            model=name,
            field="version",
        )


class ModelCatalog:
    """Fetches models from the registry; message classes are built once per descriptor set."""

    def __init__(self, registry: RegistryClient, cache_seconds: float) -> None:
        self._registry = registry
        self._cache_seconds = cache_seconds
        self._cache: dict[tuple[str, str | None], tuple[float, ModelInfo]] = {}
        self._classes: dict[tuple[str, str], type[Message]] = {}
        self._registry_down = False
        self._flights: dict[tuple[str, str | None], asyncio.Future[ModelInfo]] = {}

    async def aclose(self) -> None:
        """Close the registry client."""
        await self._registry.aclose()

    async def get(self, name: str, version: str | None = None) -> ModelInfo:
        """Return model ``name`` at ``version`` (default: the highest live version).

        Raise ``InvalidRequest`` for a malformed name, ``ModelNotFound`` for an unknown model or
        version, ``RegistryUnavailable`` when the registry cannot be asked and nothing is cached.

        Only a live version is served from the cache, so a model that comes back is used at
        once. A live entry past its ``cache_seconds`` is still served while one refresh runs in
        the background (requests never wait for the registry on a model they know), and
        requests that do have to ask share one registry call per model.
        """
        key = (name, version)
        cached = self._cache.get(key)
        if cached is not None and cached[1].alive:
            if cached[0] <= time.monotonic() and key not in self._flights:
                self._fly(key).add_done_callback(functools.partial(self._refreshed, key))
            return cached[1]
        check_name(name, version)
        flight = self._flights.get(key) or self._fly(key)
        try:
            # Shielded: a caller that gives up does not cancel the others' registry call.
            return await asyncio.shield(flight)
        except RegistryUnavailable:
            if cached is None:
                raise
            return cached[1]  # the last known description, while the registry is away

    def _fly(self, key: tuple[str, str | None]) -> asyncio.Future[ModelInfo]:
        """Start the one registry call for ``key`` that concurrent requests share."""
        flight = asyncio.ensure_future(self._load(*key))
        self._flights[key] = flight
        flight.add_done_callback(lambda _: self._flights.pop(key, None))
        return flight

    async def _load(self, name: str, version: str | None) -> ModelInfo:
        info = self._build(await self.describe(name, version))
        self._cache[(name, version)] = (time.monotonic() + self._cache_seconds, info)
        return info

    def _refreshed(self, key: tuple[str, str | None], flight: asyncio.Future[ModelInfo]) -> None:
        """After a background refresh: forget a model the registry no longer knows (the next
        request asks again and gets its 404); on any other failure keep serving the last
        known entry (an outage is logged by ``describe``)."""
        if flight.cancelled():
            return
        if isinstance(flight.exception(), ModelNotFound):
            self._cache.pop(key, None)

    async def list(self) -> list[ModelSummary]:
        """Return the registry's model summaries."""
        try:
            listed = await self._registry.list_models()
        except RegistryClientError as e:
            self._note_outage(e)
            raise RegistryUnavailable(str(e)) from e
        self._note_back()
        return listed

    async def describe(self, name: str, version: str | None = None) -> ModelDetail:
        """Return the registry's full description of ``name`` (schemas, example request)."""
        check_name(name, version)
        try:
            detail = await self._registry.get_model(name, version)
        except ModelNotRegistered as e:
            self._note_back()
            which = f"version {version!r} of model {name!r}" if version else f"model {name!r}"
            raise ModelNotFound(f"unknown {which}", model=name) from e
        except RegistryClientError as e:
            self._note_outage(e)
            raise RegistryUnavailable(str(e), model=name) from e
        self._note_back()
        return detail

    async def ping(self) -> bool:
        """Return True when the registry answers its health check."""
        return await self._registry.healthy()

    def _note_outage(self, error: Exception) -> None:
        if not self._registry_down:
            logger.warning("registry unreachable (%s); serving what is cached", error)
            self._registry_down = True

    def _note_back(self) -> None:
        if self._registry_down:
            logger.warning("registry reachable again")
            self._registry_down = False

    def _build(self, detail: ModelDetail) -> ModelInfo:
        try:
            request_class = self._class(detail.request)
            response_class = self._class(detail.response)
        except (SchemaError, binascii.Error) as e:
            raise RegistryUnavailable(
                f"unusable schema for {detail.name!r}: {e}", model=detail.name
            ) from e
        return ModelInfo(
            name=detail.name,
            version=detail.version,
            versions=tuple(v.version for v in detail.versions),
            instances=detail.instances,
            request_class=request_class,
            response_class=response_class,
            features=frozenset(detail.features),
            max_batch_size=detail.max_batch_size,
        )

    def message_class(self, schema: MessageSchema) -> type[Message]:
        """The message class of a registered schema (built once per descriptor set and type);
        ``RegistryUnavailable`` when the registry's schema cannot be used."""
        try:
            return self._class(schema)
        except (SchemaError, binascii.Error) as e:
            raise RegistryUnavailable(f"unusable schema {schema.type!r}: {e}") from e

    def _class(self, schema: MessageSchema) -> type[Message]:
        key = (schema.descriptor_set, schema.type)
        cls = self._classes.get(key)
        if cls is None:
            pool = load_pool(base64.b64decode(schema.descriptor_set))
            cls = message_class(pool, schema.type)
            self._classes[key] = cls
        return cls
