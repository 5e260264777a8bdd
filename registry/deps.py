"""FastAPI dependencies of the registry as ``Annotated`` aliases."""

import secrets
from typing import Annotated

from fastapi import Depends, Request

from registry.config import Settings
from registry.exceptions import Unauthorized
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


def require_key(request: Request) -> None:
    """When ``REGISTRY_KEY`` is set, a mutating call must carry it as a Bearer token.

    Compared in constant time; a missing or wrong key is a 401 that says no more than that.
    """
    expected = get_settings(request).registry_key
    if expected is None:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(
        given.strip().encode(), expected.encode()
    ):
        raise Unauthorized("missing or wrong registry key")


KeyDep = Depends(require_key)
