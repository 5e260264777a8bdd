"""The gateway application: ``create_app()``."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from fastapi import FastAPI

from api.catalog import ModelCatalog
from api.config import Settings
from api.dispatch import Dispatcher
from api.oip import routes as oip
from api.routes import errors, health, models, predict, tasks
from conveyor.registry_client import RegistryClient
from conveyor.results import ResultBackend


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the gateway; connections open in its lifespan."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        registry = RegistryClient(settings.registry_url, settings.registry_timeout)
        app.state.catalog = ModelCatalog(registry, settings.registry_cache_seconds)
        results = ResultBackend(aioredis.from_url(settings.redis_url))
        app.state.dispatcher = Dispatcher(settings.amqp_url, results, settings.result_ttl)
        await app.state.dispatcher.start(settings.broker_connect_timeout)
        try:
            yield
        finally:
            await app.state.dispatcher.stop()
            await app.state.catalog.aclose()

    app = FastAPI(
        title="Conveyor gateway",
        version="1",
        description="Serve ML models over a durable queue. Models are learned from the registry.",
        lifespan=lifespan,
    )
    errors.install(app)
    for module in (predict, tasks, models, health):
        app.include_router(module.router)
    app.include_router(oip.router)  # the Open Inference Protocol under /v2 (docs/protocol.md)
    return app


app = create_app()
"""The gateway configured from the environment (``uvicorn api.main:app``)."""
