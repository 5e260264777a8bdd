"""What the gateway knows about models: learned from the registry, cached briefly."""

import base64
import time
from dataclasses import dataclass
from typing import Any

import httpx
from google.protobuf.message import Message

from api.exceptions import ModelNotFound, RegistryUnavailable
from worker_base.exceptions import SchemaError
from worker_base.schema import load_pool, message_class


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

    def __init__(self, registry_url: str, cache_seconds: float, timeout: float) -> None:
        self._client = httpx.AsyncClient(base_url=registry_url, timeout=timeout)
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, ModelInfo]] = {}
        self._classes: dict[tuple[str, str], type[Message]] = {}

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()

    async def get(self, name: str) -> ModelInfo:
        """Return model ``name``; raise ``ModelNotFound`` or ``RegistryUnavailable``.

        Only a live model is served from the cache, so a model that comes (back) is used at once.
        """
        cached = self._cache.get(name)
        if cached is not None and cached[0] > time.monotonic() and cached[1].alive:
            return cached[1]
        detail = await self._fetch(f"/models/{name}", model=name)
        info = self._build(name, detail)
        self._cache[name] = (time.monotonic() + self._cache_seconds, info)
        return info

    async def list(self) -> list[dict[str, Any]]:
        """Return the registry's model summaries."""
        summaries: list[dict[str, Any]] = await self._fetch("/models")
        return summaries

    async def describe(self, name: str) -> dict[str, Any]:
        """Return the registry's full description of ``name`` (schemas, example request)."""
        detail: dict[str, Any] = await self._fetch(f"/models/{name}", model=name)
        return detail

    async def ping(self) -> bool:
        """Return True when the registry answers its health check."""
        try:
            response = await self._client.get("/healthz")
        except httpx.HTTPError:
            return False
        return response.is_success

    async def _fetch(self, path: str, model: str | None = None) -> Any:
        try:
            response = await self._client.get(path)
        except httpx.HTTPError as e:
            raise RegistryUnavailable(f"registry unreachable: {e}", model=model) from e
        if response.status_code == httpx.codes.NOT_FOUND and model is not None:
            raise ModelNotFound(f"unknown model {model!r}", model=model)
        if response.is_error:
            raise RegistryUnavailable(f"registry answered {response.status_code}", model=model)
        return response.json()

    def _build(self, name: str, detail: dict[str, Any]) -> ModelInfo:
        try:
            request_class = self._class(detail["request"])
            response_class = self._class(detail["response"])
        except (KeyError, SchemaError, ValueError) as e:
            raise RegistryUnavailable(f"unusable schema for {name!r}: {e}", model=name) from e
        return ModelInfo(
            name=name,
            version=str(detail["version"]),
            queue=str(detail["queue"]),
            instances=int(detail["instances"]),
            request_class=request_class,
            response_class=response_class,
        )

    def _class(self, schema: dict[str, Any]) -> type[Message]:
        key = (schema["descriptor_set"], schema["type"])
        cls = self._classes.get(key)
        if cls is None:
            pool = load_pool(base64.b64decode(schema["descriptor_set"]))
            cls = message_class(pool, schema["type"])
            self._classes[key] = cls
        return cls
