"""The gateway application: ``create_app()``."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.callbacks.delivery import CallbackDelivery
from api.catalog import ModelCatalog
from api.config import Settings
from api.cors import CorsPolicy
from api.dashboard.monitor import Monitor
from api.dispatch import Dispatcher
from api.drain import DrainRates, RetryAdvice
from api.edge import Admission, Edge
from api.following import TaskFollower
from api.idempotency import IdempotencyKeys
from api.oip import routes as oip
from api.oip.catalog_extensions import Extensions
from api.oip.fast_path import InferFastPath
from api.openai import routes as openai
from api.routes import dashboard, docs, errors, health, metrics, models, predict, tasks
from api.routes.predict import PredictFastPath
from conveyor import tracing
from conveyor.metrics import GATEWAY_SHARED_GAUGES, GatewayMetrics
from conveyor.process import settle_heap
from conveyor.redis import redis_client_for
from conveyor.registry_client import RegistryClient
from conveyor.results import ResultBackend
from conveyor.sibling_metrics import Siblings
from conveyor.stats import StatsReader


def create_app(
    settings: Settings | None = None, siblings: tuple[str, int] | None = None
) -> FastAPI:
    """Build the gateway; connections open in its lifespan.

    Every HTTP request passes the CORS middleware when ``CORS_ORIGINS`` is set (``api.cors``),
    then the ``Edge`` middleware (request id, in-flight bound, body limit, keys, metrics), then
    ``PredictFastPath`` (which answers ``POST /predict/<model>``) and ``InferFastPath`` (the
    protocol's ``POST /v2/models/<m>[/versions/<v>]/infer``), then FastAPI's routing.
    ``app.state.admission`` is the in-flight bound, for the HTTP protocol to consult before a
    request reaches the app (``api.__main__``).

    ``siblings`` (group, place): this app is one of ``API_WORKERS`` processes, and its
    ``/metrics`` answers for all of them (``conveyor.sibling_metrics``)."""
    settings = settings or Settings()
    gateway_metrics = GatewayMetrics() if settings.metrics_enabled else None
    metric_siblings = None
    if gateway_metrics is not None and siblings is not None:
        group, place = siblings
        metric_siblings = Siblings(
            group, place, settings.api_workers, gateway_metrics.registry, GATEWAY_SHARED_GAUGES
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        registry = RegistryClient(settings.registry_url, settings.registry_timeout)
        app.state.catalog = ModelCatalog(registry, settings.registry_cache_seconds)
        # One connection per request in progress at most (plus the result subscription).
        redis = redis_client_for(settings, max_connections=settings.max_inflight + 8)
        rates = DrainRates(redis)
        app.state.dispatcher = dispatcher = Dispatcher(
            settings.amqp_url,
            ResultBackend(redis),
            settings.result_ttl,
            sync_durable=settings.sync_durable,
            retry_after=settings.retry_after,
            metrics=gateway_metrics,
            stream_buffer=settings.stream_buffer,
        )
        dispatcher.advice = RetryAdvice(rates, dispatcher.queued)
        await dispatcher.start(settings.broker_connect_timeout)
        rates.start()
        # Reads that block (?wait=, /events, streams) hold a connection each: a pool of their own.
        waits = redis_client_for(settings, max_connections=settings.max_waiting + 2)
        app.state.follower = TaskFollower(
            redis, waits, rates, app.state.admission, settings.max_waiting, settings.retry_after
        )
        dispatcher.events = app.state.follower  # streams read and wait through it
        app.state.idempotency = IdempotencyKeys(redis, settings.idempotency_ttl)
        app.state.extensions = Extensions(app.state.catalog, StatsReader(redis))
        # Completion callbacks of async tasks, on a Redis client of their own (api/callbacks/).
        callbacks = CallbackDelivery.for_gateway(
            settings, app.state.dispatcher, app.state.catalog, gateway_metrics
        )
        callbacks.start()
        if gateway_metrics is not None:
            app.state.monitor = Monitor(
                app.state.catalog,
                app.state.dispatcher,
                gateway_metrics,
                settings.dashboard_sample_seconds,
            )
            app.state.monitor.start()
        if metric_siblings is not None:
            await metric_siblings.start()
        grpc_server = None
        if settings.grpc_port:
            # Imported here: a process without gRPC never loads grpc, nor registers the
            # protocol's `inference.*` messages (which tritonclient.grpc defines too).
            from api.grpc.server import start_grpc

            grpc_server = await start_grpc(app)  # the protocol over gRPC (api/grpc/)
        settle_heap()  # freeze what start-up allocated; collect young objects less often
        try:
            yield
        finally:
            if grpc_server is not None:
                await grpc_server.stop()
            if gateway_metrics is not None:
                await app.state.monitor.stop()
            if metric_siblings is not None:
                await metric_siblings.stop()
            await rates.stop()
            await callbacks.stop()  # before the dispatcher, whose Redis it reads tasks with
            await app.state.dispatcher.stop()
            await waits.aclose()
            await app.state.catalog.aclose()
            tracing.flush()  # the spans still held leave before the process does

    app = FastAPI(
        title="Conveyor gateway",
        version="1",
        description="Serve ML models over a durable queue. Models are learned from the registry.",
        lifespan=lifespan,
        # Served by api.routes.docs instead: the document changes as models register.
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.metrics = gateway_metrics
    app.state.metric_siblings = metric_siblings
    errors.install(app)
    for module in (predict, tasks, models, health, metrics, dashboard, docs):
        app.include_router(module.router)
    app.include_router(oip.router)  # the Open Inference Protocol under /v2 (docs/protocol.md)
    app.include_router(openai.router)  # OpenAI-compatible, under /v1 (docs/api.md)
    cors = CorsPolicy(settings.cors_origins)
    admission = Admission(
        settings.max_inflight, retry_after=settings.retry_after, metrics=gateway_metrics, cors=cors
    )
    app.state.admission = admission
    # Added first, so inside the Edge (Starlette runs the last added outermost).
    app.add_middleware(InferFastPath, state=app.state)
    app.add_middleware(PredictFastPath, state=app.state)
    app.add_middleware(
        Edge,
        admission=admission,
        max_body_bytes=settings.max_body_bytes,
        api_keys=settings.api_keys,
        metrics=gateway_metrics,
    )
    cors.install(app)  # outermost: a preflight meets neither the in-flight bound nor the keys
    return app
