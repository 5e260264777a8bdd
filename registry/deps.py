"""FastAPI dependencies of the registry as ``Annotated`` aliases."""

from typing import Annotated

from fastapi import Depends, Request

from registry.config import Settings
from registry.store import RegistryStore


def get_settings(request: Request) -> Settings:
    """The registry's settings."""
    settings: Settings = request.app.state.settings
    return settings


def get_store(request: Request) -> RegistryStore:
    """The registrations in Redis."""
    store: RegistryStore = request.app.state.store
    return store


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[RegistryStore, Depends(get_store)]
