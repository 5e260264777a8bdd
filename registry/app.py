"""The registry's HTTP API: instance registration and heartbeats, model listing."""

import base64
import binascii
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import redis.asyncio as aioredis
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from registry.config import Settings
from registry.exceptions import InstanceNotFound, InvalidSchema, ModelNotFound, RegistryError
from registry.schemas import InstanceAck, MessageSchema, ModelDetail, ModelSummary, Registration
from registry.store import ModelRecord, RegistryStore
from worker_base.exceptions import SchemaError
from worker_base.schema import describe_message, find_message, load_pool

_STATUS = {ModelNotFound: 404, InstanceNotFound: 404, InvalidSchema: 422}


def _store(request: Request) -> RegistryStore:
    store: RegistryStore = request.app.state.store
    return store


StoreDep = Annotated[RegistryStore, Depends(_store)]


def _validate(registration: Registration) -> None:
    try:
        pool = load_pool(base64.b64decode(registration.descriptor_set, validate=True))
        find_message(pool, registration.request_type)
        find_message(pool, registration.response_type)
    except (binascii.Error, SchemaError) as e:
        raise InvalidSchema(str(e)) from e


def _summary(record: ModelRecord) -> ModelSummary:
    return ModelSummary(
        name=record.name,
        status="alive" if record.instances > 0 else "dead",
        version=record.registration.version,
        instances=record.instances,
        queue=record.registration.queue,
    )


def _detail(record: ModelRecord) -> ModelDetail:
    reg = record.registration
    pool = load_pool(base64.b64decode(reg.descriptor_set))

    def schema(full_name: str) -> MessageSchema:
        described = describe_message(find_message(pool, full_name))
        return MessageSchema(
            type=full_name, descriptor_set=reg.descriptor_set, fields=described["fields"]
        )

    return ModelDetail(
        **_summary(record).model_dump(),
        request=schema(reg.request_type),
        response=schema(reg.response_type),
        example_request=reg.example_request,
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the registry application."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = aioredis.from_url(settings.redis_url)
        app.state.store = RegistryStore(
            client, settings.registry_key_prefix, settings.liveness_window
        )
        try:
            yield
        finally:
            await client.aclose()

    app = FastAPI(title="Conveyor registry", version="1", lifespan=lifespan)

    @app.exception_handler(RegistryError)
    async def registry_error(request: Request, exc: RegistryError) -> JSONResponse:
        status = _STATUS.get(type(exc), 500)
        body = {"error": {"code": type(exc).__name__, "message": str(exc)}}
        return JSONResponse(status_code=status, content=body)

    @app.post("/models/{name}/instances/{instance_id}", status_code=201)
    async def register(
        name: str, instance_id: str, registration: Registration, store: StoreDep
    ) -> InstanceAck:
        """Register (or re-register) a live instance of model ``name``."""
        _validate(registration)
        await store.register(name, instance_id, registration)
        return InstanceAck(
            model=name, instance_id=instance_id, liveness_window=settings.liveness_window
        )

    @app.put("/models/{name}/instances/{instance_id}")
    async def heartbeat(name: str, instance_id: str, store: StoreDep) -> InstanceAck:
        """Renew an instance's liveness; 404 means: register again."""
        await store.heartbeat(name, instance_id)
        return InstanceAck(
            model=name, instance_id=instance_id, liveness_window=settings.liveness_window
        )

    @app.delete("/models/{name}/instances/{instance_id}", status_code=204)
    async def deregister(name: str, instance_id: str, store: StoreDep) -> None:
        """Remove an instance (a worker shutting down)."""
        await store.deregister(name, instance_id)

    @app.get("/models")
    async def list_models(store: StoreDep) -> list[ModelSummary]:
        """List every registered model with its status and live instance count."""
        return [_summary(record) for record in await store.list()]

    @app.get("/models/{name}")
    async def get_model(name: str, store: StoreDep) -> ModelDetail:
        """Show one model: status, version, instances, schemas and an example request."""
        return _detail(await store.get(name))

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness of the registry process itself."""
        return {"status": "ok"}

    return app
