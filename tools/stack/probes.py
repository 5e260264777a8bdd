"""HTTP probes of a running stack: is a service ready, which models are alive."""

from __future__ import annotations

from collections.abc import Iterable

import httpx

__all__ = ["http_ok", "models_alive"]


def http_ok(url: str, timeout: float = 5.0) -> bool:
    """True when ``GET url`` answers 200."""
    return httpx.get(url, timeout=timeout).status_code == 200


def models_alive(api_url: str, names: Iterable[str], timeout: float = 5.0) -> bool:
    """True when the gateway's ``/models`` lists every model of ``names`` as alive."""
    listed = httpx.get(f"{api_url}/models", timeout=timeout).json()
    if not isinstance(listed, list):
        return False
    alive = {m.get("name") for m in listed if isinstance(m, dict) and m.get("status") == "alive"}
    return set(names) <= alive
