"""The traceview application: ``create_app()``."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from traceview import errors
from traceview.config import Settings
from traceview.grpc_server import GRACE_SECONDS, start_grpc
from traceview.routes import health, otlp, traces
from traceview.store import TraceStore

logger = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, store: TraceStore | None = None) -> FastAPI:
    """Build traceview over ``store`` (a new one of ``TRACEVIEW_MAX_SPANS`` by default); its
    lifespan starts the OTLP/gRPC server when ``TRACEVIEW_GRPC_PORT`` is not 0."""
    settings = settings or Settings()
    store = store if store is not None else TraceStore(settings.traceview_max_spans)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        server = None
        if settings.traceview_grpc_port:
            server, port = await start_grpc(
                store, settings.traceview_host, settings.traceview_grpc_port
            )
            logger.info("OTLP/gRPC on %s:%d", settings.traceview_host, port)
        try:
            yield
        finally:
            if server is not None:
                await server.stop(GRACE_SECONDS)

    app = FastAPI(
        title="Conveyor traceview",
        version="1",
        description="Receives OpenTelemetry traces (OTLP) and shows them.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.store = store
    errors.install(app)
    for module in (otlp, traces, health):
        app.include_router(module.router)
    return app
