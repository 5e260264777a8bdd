"""The gateway application: ``create_app()``."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.catalog import ModelCatalog
from api.config import Settings
from api.dispatch import Dispatcher
from api.edge import Edge
from api.oip import routes as oip
from api.routes import errors, health, models, predict, tasks
from conveyor.redis import redis_client_for
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
        # One connection per request in progress at most (plus the result subscription).
        redis = redis_client_for(settings, max_connections=settings.max_inflight + 8)
        app.state.dispatcher = Dispatcher(
            settings.amqp_url,
            ResultBackend(redis),
            settings.result_ttl,
            sync_durable=settings.sync_durable,
            retry_after=settings.retry_after,
        )
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
    app.state.settings = settings
    errors.install(app)
    for module in (predict, tasks, models, health):
        app.include_router(module.router)
    app.include_router(oip.router)  # the Open Inference Protocol under /v2 (docs/protocol.md)
    app.add_middleware(
        Edge,
        max_inflight=settings.max_inflight,
        max_body_bytes=settings.max_body_bytes,
        api_keys=settings.api_keys,
        retry_after=settings.retry_after,
    )
    return app
