"""Worker instances: register, heartbeat, deregister (docs/protocol.md, section 1)."""

from typing import Any

from fastapi import APIRouter

from conveyor.registry_api import InstanceAck, Registration
from conveyor.web import ErrorBody
from registry.deps import SettingsDep, StoreDep
from registry.views import validate

router = APIRouter(tags=["instances"])

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "Unknown or expired instance"}
}


@router.post(
    "/models/{name}/instances/{instance_id}",
    status_code=201,
    responses={422: {"model": ErrorBody, "description": "Invalid body or schema"}},
)
async def register(
    name: str, instance_id: str, registration: Registration, store: StoreDep, settings: SettingsDep
) -> InstanceAck:
    """Register (or re-register) a live instance of model ``name``."""
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
