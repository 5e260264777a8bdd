"""What the gateway knows about models: learned from the registry, cached briefly."""

import base64
import binascii
import time
from dataclasses import dataclass

from google.protobuf.message import Message

from api.exceptions import ModelNotFound, RegistryUnavailable
from conveyor.descriptors import load_pool, message_class
from conveyor.errors import ModelNotRegistered, RegistryClientError, SchemaError
from conveyor.registry_api import MessageSchema, ModelDetail, ModelSummary
from conveyor.registry_client import RegistryClient


@dataclass(frozen=True)
class ModelInfo:
    """A model as the gateway uses it: queue, liveness, and message classes built at run time."""

    name: str
    version: str
    queue: str
    instances: int
    request_class: type[Message]
    response_class: type[Message]

    @property
    def alive(self) -> bool:
        """True when at least one instance is alive."""
        return self.instances > 0


class ModelCatalog:
    """Fetches models from the registry; message classes are built once per descriptor set."""

    def __init__(self, registry: RegistryClient, cache_seconds: float) -> None:
        self._registry = registry
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, ModelInfo]] = {}
        self._classes: dict[tuple[str, str], type[Message]] = {}

    async def aclose(self) -> None:
        """Close the registry client."""
        await self._registry.aclose()

    async def get(self, name: str) -> ModelInfo:
        """Return model ``name``; raise ``ModelNotFound`` or ``RegistryUnavailable``.

        Only a live model is served from the cache, so a model that comes (back) is used at once.
        """
        cached = self._cache.get(name)
        if cached is not None and cached[0] > time.monotonic() and cached[1].alive:
            return cached[1]
        info = self._build(await self.describe(name))
        self._cache[name] = (time.monotonic() + self._cache_seconds, info)
        return info

    async def list(self) -> list[ModelSummary]:
        """Return the registry's model summaries."""
        try:
            return await self._registry.list_models()
        except RegistryClientError as e:
            raise RegistryUnavailable(str(e)) from e

    async def describe(self, name: str) -> ModelDetail:
        """Return the registry's full description of ``name`` (schemas, example request)."""
        try:
            return await self._registry.get_model(name)
        except ModelNotRegistered as e:
            raise ModelNotFound(f"unknown model {name!r}", model=name) from e
        except RegistryClientError as e:
            raise RegistryUnavailable(str(e), model=name) from e

    async def ping(self) -> bool:
        """Return True when the registry answers its health check."""
        return await self._registry.healthy()

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
            queue=detail.queue,
            instances=detail.instances,
            request_class=request_class,
            response_class=response_class,
        )

    def _class(self, schema: MessageSchema) -> type[Message]:
        key = (schema.descriptor_set, schema.type)
        cls = self._classes.get(key)
        if cls is None:
            pool = load_pool(base64.b64decode(schema.descriptor_set))
            cls = message_class(pool, schema.type)
            self._classes[key] = cls
        return cls
