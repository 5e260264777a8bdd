"""Registering a worker instance with the registry and keeping it visibly alive."""

import asyncio
import base64
import logging
from typing import Any

import httpx

from worker_base.exceptions import RegistrationError

logger = logging.getLogger(__name__)


class RegistryClient:
    """Talks to the registry's instance endpoints for one worker instance."""

    def __init__(self, base_url: str, model: str, instance_id: str, timeout: float) -> None:
        self._client = httpx.AsyncClient(base_url=base_url, timeout=timeout)
        self._path = f"/models/{model}/instances/{instance_id}"

    async def register(
        self,
        *,
        version: str,
        queue: str,
        request_type: str,
        response_type: str,
        descriptor_set: bytes,
        example_request: dict[str, Any],
    ) -> None:
        """Register (or re-register) this instance with its model's schemas."""
        body = {
            "version": version,
            "queue": queue,
            "request_type": request_type,
            "response_type": response_type,
            "descriptor_set": base64.b64encode(descriptor_set).decode("ascii"),
            "example_request": example_request,
        }
        await self._send("POST", json=body)

    async def heartbeat(self) -> bool:
        """Renew this instance's liveness; return False if the registry no longer knows it."""
        try:
            response = await self._client.put(self._path)
        except httpx.HTTPError as e:
            raise RegistrationError(f"heartbeat failed: {e}") from e
        if response.status_code == httpx.codes.NOT_FOUND:
            return False
        if response.is_error:
            raise RegistrationError(f"heartbeat refused: {response.status_code} {response.text}")
        return True

    async def deregister(self) -> None:
        """Remove this instance from the registry."""
        await self._send("DELETE")

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()

    async def _send(self, method: str, json: dict[str, Any] | None = None) -> None:
        try:
            response = await self._client.request(method, self._path, json=json)
        except httpx.HTTPError as e:
            raise RegistrationError(f"{method} {self._path} failed: {e}") from e
        if response.is_error and response.status_code != httpx.codes.NOT_FOUND:
            raise RegistrationError(
                f"{method} {self._path} refused: {response.status_code} {response.text}"
            )


async def keep_alive(
    client: RegistryClient, register_kwargs: dict[str, Any], interval: float
) -> None:
    """Register, then heartbeat every ``interval`` seconds, re-registering when forgotten.

    Runs until cancelled; registry outages are logged and retried, never fatal.
    """
    registered = False
    while True:
        try:
            if not registered:
                await client.register(**register_kwargs)
                registered = True
                logger.info("registered with the registry")
            elif not await client.heartbeat():
                registered = False
                continue
        except RegistrationError as e:
            registered = False
            logger.warning("%s", e)
        await asyncio.sleep(interval)
