"""Worker instances: register, heartbeat, deregister (docs/protocol.md, section 1)."""

from typing import Annotated, Any

from fastapi import APIRouter, Path

from conveyor.protocol import MODEL_NAME_PATTERN
from conveyor.registry_api import InstanceAck, Registration
from conveyor.web import ErrorBody
from registry.deps import KeyDep, SettingsDep, StoreDep
from registry.views import validate

router = APIRouter(tags=["instances"], dependencies=[KeyDep])

ModelName = Annotated[str, Path(pattern=f"^{MODEL_NAME_PATTERN.pattern}$")]
InstanceId = Annotated[str, Path(min_length=1, max_length=200)]

_UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing or wrong registry key"}
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "Unknown or expired instance"},
    **_UNAUTHORIZED,
}


@router.post(
    "/models/{name}/instances/{instance_id}",
    status_code=201,
    responses={
        400: {"model": ErrorBody, "description": "The body could not be read (not UTF-8)"},
        409: {"model": ErrorBody, "description": "The version has another schema"},
        422: {"model": ErrorBody, "description": "Invalid name, body or schema"},
        **_UNAUTHORIZED,
    },
)
async def register(
    name: ModelName,
    instance_id: InstanceId,
    registration: Registration,
    store: StoreDep,
    settings: SettingsDep,
) -> InstanceAck:
    """Register (or re-register) a live instance of a version of model ``name``."""
    validate(registration)
    await store.register(name, instance_id, registration)
    return InstanceAck(
        model=name, instance_id=instance_id, liveness_window=settings.liveness_window
    )


@router.put("/models/{name}/instances/{instance_id}", responses=_NOT_FOUND)
async def heartbeat(
    name: str, instance_id: str, store: StoreDep, settings: SettingsDep
) -> InstanceAck:
    """Renew an instance's liveness; 404 means: register again."""
    await store.heartbeat(name, instance_id)
    return InstanceAck(
        model=name, instance_id=instance_id, liveness_window=settings.liveness_window
    )


@router.delete("/models/{name}/instances/{instance_id}", status_code=204, responses=_NOT_FOUND)
async def deregister(name: str, instance_id: str, store: StoreDep) -> None:
    """Remove an instance (a worker shutting down)."""
    await store.deregister(name, instance_id)
