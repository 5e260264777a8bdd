"""Registering a worker instance with the registry and keeping it visibly alive."""

import asyncio
import base64
import logging

from conveyor.descriptors import file_descriptor_set
from conveyor.errors import RegistryClientError, RegistryRefused
from conveyor.protocol import STREAM_FEATURE, TASK_BATCH_FEATURE, TEXT_GENERATION_FEATURE
from conveyor.registry_api import Registration
from conveyor.registry_client import RegistryClient
from worker_base.model import Model

logger = logging.getLogger(__name__)


def registration_of(
    model: Model, version: str, queue: str, max_batch_size: int = 0
) -> Registration:
    """What a worker of ``model`` (``version``, durable queue ``queue``, running up to
    ``max_batch_size`` tasks per model call, 0 when it does not batch) tells the registry.

    Features: ``task-batch`` always (it unpacks ``TaskBatch`` messages: worker, settle);
    ``stream`` when the model implements ``process_stream`` (it answers in pieces; every worker
    runs streamed tasks); ``text-generation`` when it sets ``text_generation`` (checked when
    the worker starts: ``worker_base.contracts``)."""
    request, response = model.get_request_format(), model.get_response_format()
    descriptor_set = file_descriptor_set(request, response)
    features = [TASK_BATCH_FEATURE]
    if model.implements_streaming():
        features.append(STREAM_FEATURE)
    if model.text_generation:
        features.append(TEXT_GENERATION_FEATURE)
    return Registration(
        version=version,
        queue=queue,
        request_type=request.full_name,
        response_type=response.full_name,
        descriptor_set=base64.b64encode(descriptor_set).decode("ascii"),
        example_request=model.example_request(),
        features=features,
        max_batch_size=max_batch_size,
    )


async def keep_alive(
    client: RegistryClient,
    model: str,
    instance_id: str,
    registration: Registration,
    interval: float,
) -> None:
    """Register, then heartbeat every ``interval`` seconds, re-registering when forgotten.

    Runs until cancelled; a registry outage is logged once (and its end), retried, never fatal.
    A refused registration is fatal (``RegistryRefused`` is raised): the version is registered
    with another schema (409), or the worker lacks the registry key (401); retrying cannot help.
    """
    registered = False
    failing: str | None = None
    while True:
        try:
            if not registered:
                await client.register(model, instance_id, registration)
                registered = True
                logger.info("registered %s version %s", model, registration.version)
            elif not await client.heartbeat(model, instance_id):
                registered = False
                continue
        except RegistryRefused as e:
            if e.status in (401, 403, 409, 422):
                logger.error(
                    "the registry refused %s version %s: %s", model, registration.version, e
                )
                raise
            registered = False
            logger.warning("registry: %s", e)
        except RegistryClientError as e:
            registered = False
            if failing != type(e).__name__:
                logger.warning("registry: %s; retrying every %g s", e, interval)
                failing = type(e).__name__
        else:
            if failing is not None:
                logger.warning("registry reachable again")
                failing = None
        await asyncio.sleep(interval)
