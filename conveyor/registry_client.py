"""A typed client of the registry's HTTP API, for the workers and the gateway.

Names are escaped into the URL path, so a model name can never add a query, a fragment or a path
segment to a registry call.
"""

from collections.abc import Mapping
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from conveyor.errors import ModelNotRegistered, RegistryRefused, RegistryUnavailable
from conveyor.registry_api import InstanceAck, ModelDetail, ModelSummary, Registration

__all__ = ["RegistryClient"]

_M = TypeVar("_M", bound=BaseModel)
_SUMMARIES = TypeAdapter(list[ModelSummary])


def _segment(name: str) -> str:
    return quote(name, safe="")


class RegistryClient:
    """Calls the registry at ``base_url``; failures raise ``conveyor.errors.RegistryClientError``.

    ``transport`` replaces the network (tests pass an ``httpx.MockTransport``).
    """

    def __init__(
        self,
        base_url: str,
        timeout: float,
        transport: httpx.AsyncBaseTransport | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url, timeout=timeout, transport=transport, headers=headers
        )

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()

    async def register(
        self, model: str, instance_id: str, registration: Registration
    ) -> InstanceAck:
        """Register (or re-register) instance ``instance_id`` of ``model``."""
        response = await self._call(
            "POST", _instance_path(model, instance_id), json=registration.model_dump(mode="json")
        )
        return _parse(InstanceAck, response)

    async def heartbeat(self, model: str, instance_id: str) -> bool:
        """Renew the instance's liveness; False when the registry no longer knows it."""
        try:
            await self._call("PUT", _instance_path(model, instance_id))
        except ModelNotRegistered:
            return False
        return True

    async def deregister(self, model: str, instance_id: str) -> None:
        """Remove the instance; an instance the registry does not know is not an error."""
        try:
            await self._call("DELETE", _instance_path(model, instance_id))
        except ModelNotRegistered:
            return

    async def list_models(self) -> list[ModelSummary]:
        """Every registered model, with status and live instances."""
        response = await self._call("GET", "/models")
        try:
            return _SUMMARIES.validate_json(response.content)
        except ValidationError as e:
            raise RegistryUnavailable(f"the registry answered an unreadable list: {e}") from e

    async def get_model(self, name: str, version: str | None = None) -> ModelDetail:
        """One model version's detail (default: the model's default version); raise
        ``ModelNotRegistered`` for an unknown model or version."""
        path = f"/models/{_segment(name)}"
        if version is not None:
            path += f"/versions/{_segment(version)}"
        return _parse(ModelDetail, await self._call("GET", path))

    async def healthy(self) -> bool:
        """True when the registry answers its health check."""
        try:
            await self._call("GET", "/healthz")
        except RegistryUnavailable:
            return False
        return True

    async def _call(self, method: str, path: str, json: Any = None) -> httpx.Response:
        try:
            response = await self._client.request(method, path, json=json)
        except httpx.HTTPError as e:
            raise RegistryUnavailable(f"registry unreachable: {type(e).__name__}: {e}") from e
        if response.status_code == httpx.codes.NOT_FOUND:
            raise ModelNotRegistered(f"{method} {path}: not found")
        if response.is_server_error:
            raise RegistryUnavailable(
                f"{method} {path}: the registry answered {response.status_code}"
            )
        if response.is_error:
            raise RegistryRefused(
                f"{method} {path} refused: {response.status_code} {response.text[:500]}",
                status=response.status_code,
            )
        return response


def _instance_path(model: str, instance_id: str) -> str:
    return f"/models/{_segment(model)}/instances/{_segment(instance_id)}"


def _parse(model: type[_M], response: httpx.Response) -> _M:
    try:
        return model.model_validate_json(response.content)
    except ValidationError as e:
        raise RegistryUnavailable(
            f"the registry answered an unreadable {model.__name__}: {e}"
        ) from e
