"""The gateway application: ``create_app()``."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from api.catalog import ModelCatalog
from api.config import Settings
from api.dashboard.monitor import Monitor
from api.dispatch import Dispatcher
from api.edge import Edge
from api.oip import routes as oip
from api.routes import dashboard, errors, health, metrics, models, predict, tasks
from api.shortcut import PredictShortcut
from conveyor.metrics import GatewayMetrics
from conveyor.process import settle_heap
from conveyor.redis import redis_client_for
from conveyor.registry_client import RegistryClient
from conveyor.results import ResultBackend


class Gateway(FastAPI):
    """The gateway's ASGI app. Every HTTP request enters through ``entry`` (the ``Edge``, then
    ``PredictShortcut``), which passes what it does not answer itself on to FastAPI."""

    entry: ASGIApp | None = None
    edge: Edge | None = None
    """The ``Edge`` inside ``entry``: the server's protocol (``api.wire``) asks it to shed load."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.entry is not None:
            await self.entry(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    async def framework(self, scope: Scope, receive: Receive, send: Send) -> None:
        """FastAPI itself: its middleware, routing and error handlers."""
        await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None) -> Gateway:
    """Build the gateway; connections open in its lifespan."""
    settings = settings or Settings()
    gateway_metrics = GatewayMetrics() if settings.metrics_enabled else None

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
        if gateway_metrics is not None:
            app.state.monitor = Monitor(
                app.state.catalog,
                app.state.dispatcher,
                gateway_metrics,
                settings.dashboard_sample_seconds,
            )
            app.state.monitor.start()
        settle_heap()  # freeze what start-up allocated; collect young objects less often
        try:
            yield
        finally:
            if gateway_metrics is not None:
                await app.state.monitor.stop()
            await app.state.dispatcher.stop()
            await app.state.catalog.aclose()

    app = Gateway(
        title="Conveyor gateway",
        version="1",
        description="Serve ML models over a durable queue. Models are learned from the registry.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = gateway_metrics
    errors.install(app)
    for module in (predict, tasks, models, health, metrics, dashboard):
        app.include_router(module.router)
    app.include_router(oip.router)  # the Open Inference Protocol under /v2 (docs/protocol.md)
    app.entry = app.edge = Edge(
        PredictShortcut(app.framework, app.state),
        max_inflight=settings.max_inflight,
        max_body_bytes=settings.max_body_bytes,
        api_keys=settings.api_keys,
        retry_after=settings.retry_after,
        metrics=gateway_metrics,
    )
    return app
