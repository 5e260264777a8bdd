"""Registering a worker instance with the registry and keeping it visibly alive."""

import asyncio
import base64
import logging

from conveyor.descriptors import file_descriptor_set
from conveyor.errors import RegistryClientError
from conveyor.registry_api import Registration
from conveyor.registry_client import RegistryClient
from worker_base.model import Model

logger = logging.getLogger(__name__)


def registration_of(model: Model, queue: str) -> Registration:
    """What a worker of ``model`` consuming ``queue`` tells the registry."""
    request, response = model.get_request_format(), model.get_response_format()
    descriptor_set = file_descriptor_set(request, response)
    return Registration(
        version=model.version,
        queue=queue,
        request_type=request.full_name,
        response_type=response.full_name,
        descriptor_set=base64.b64encode(descriptor_set).decode("ascii"),
        example_request=model.example_request(),
    )


async def keep_alive(
    client: RegistryClient,
    model: str,
    instance_id: str,
    registration: Registration,
    interval: float,
) -> None:
    """Register, then heartbeat every ``interval`` seconds, re-registering when forgotten.

    Runs until cancelled; registry outages are logged and retried, never fatal.
    """
    registered = False
    while True:
        try:
            if not registered:
                await client.register(model, instance_id, registration)
                registered = True
                logger.info("registered with the registry")
            elif not await client.heartbeat(model, instance_id):
                registered = False
                continue
        except RegistryClientError as e:
            registered = False
            logger.warning("registry: %s", e)
        await asyncio.sleep(interval)
