"""FastAPI dependencies as ``Annotated`` aliases."""

from typing import Annotated

from fastapi import Depends, Request

from api.catalog import ModelCatalog
from api.config import Settings
from api.dispatch import Dispatcher


def get_settings(request: Request) -> Settings:
    """The gateway's settings."""
    settings: Settings = request.app.state.settings
    return settings


def get_catalog(request: Request) -> ModelCatalog:
    """The model catalog (registry client)."""
    catalog: ModelCatalog = request.app.state.catalog
    return catalog


def get_dispatcher(request: Request) -> Dispatcher:
    """The task dispatcher (RabbitMQ + Redis)."""
    dispatcher: Dispatcher = request.app.state.dispatcher
    return dispatcher


SettingsDep = Annotated[Settings, Depends(get_settings)]
CatalogDep = Annotated[ModelCatalog, Depends(get_catalog)]
DispatcherDep = Annotated[Dispatcher, Depends(get_dispatcher)]
