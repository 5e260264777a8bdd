"""Which callback URLs a submit may name: ``http``/``https`` only, to hosts the operator allows
(``CALLBACK_ALLOWED_HOSTS``), so the gateway cannot be used to reach internal addresses."""

from __future__ import annotations

from urllib.parse import urlsplit

from api.exceptions import InvalidRequest

__all__ = ["MAX_URL_LENGTH", "check_callback_url", "host_allowed"]

MAX_URL_LENGTH = 2048
"""The longest callback URL accepted."""


def host_allowed(host: str, allowed: tuple[str, ...]) -> bool:
    """True when ``allowed`` is empty (any host), names ``host``, or has a ``*.suffix`` that
    ``host`` ends with."""
    if not allowed:
        return True
    host = host.lower().rstrip(".")
    for entry in allowed:
        if entry.startswith("*."):
            if host.endswith(entry[1:]):
                return True
        elif host == entry:
            return True
    return False


def check_callback_url(url: str, allowed: tuple[str, ...], model: str) -> str:
    """Return ``url`` if a callback may go there; raise a 422 ``InvalidRequest`` naming
    ``callback_url`` otherwise."""

    def refuse(why: str) -> InvalidRequest:
        return InvalidRequest(f"callback_url {why}", model=model, field="callback_url")

    if len(url) > MAX_URL_LENGTH:
        raise refuse(f"is longer than {MAX_URL_LENGTH} characters")
    if any(c.isspace() or ord(c) < 0x21 or ord(c) > 0x7E for c in url):
        raise refuse("must be an absolute URL of printable ASCII without spaces")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise refuse(f"is not a URL: {e}") from None
    if parts.scheme not in ("http", "https"):
        raise refuse("must be an http:// or https:// URL")
    host = parts.hostname
    if not host:
        raise refuse("names no host")
    if parts.username is not None or parts.password is not None:
        raise refuse("must not carry credentials")
    if port == 0:
        raise refuse("names port 0")
    if not host_allowed(host, allowed):
        raise refuse(f"names host {host!r}, which CALLBACK_ALLOWED_HOSTS does not allow")
    return url
