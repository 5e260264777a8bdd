"""FastAPI dependencies as ``Annotated`` aliases.

They are ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in a worker thread,
a hand-off that costs more than everything these functions do.
"""

from typing import Annotated

from fastapi import Depends, Request

from api.catalog import ModelCatalog
from api.config import Settings
from api.dispatch import Dispatcher
from api.edge import arrival_of, request_id_of


async def get_settings(request: Request) -> Settings:
    """The gateway's settings."""
    settings: Settings = request.app.state.settings
    return settings


async def get_catalog(request: Request) -> ModelCatalog:
    """The model catalog (registry client)."""
    catalog: ModelCatalog = request.app.state.catalog
    return catalog


async def get_dispatcher(request: Request) -> Dispatcher:
    """The task dispatcher (RabbitMQ + Redis)."""
    dispatcher: Dispatcher = request.app.state.dispatcher
    return dispatcher


async def get_arrival(request: Request) -> float:
    """When the request arrived at the gateway (``time.monotonic()``)."""
    return arrival_of(request.scope)


async def get_request_id(request: Request) -> str:
    """The request's id (``X-Request-ID``)."""
    return request_id_of(request.scope)


SettingsDep = Annotated[Settings, Depends(get_settings)]
CatalogDep = Annotated[ModelCatalog, Depends(get_catalog)]
DispatcherDep = Annotated[Dispatcher, Depends(get_dispatcher)]
ArrivalDep = Annotated[float, Depends(get_arrival)]
RequestIdDep = Annotated[str, Depends(get_request_id)]
