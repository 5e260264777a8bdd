"""Where a push finds the registry and its credentials: repository names, the environment, and
Docker- or podman-style auth files. Credentials are never written anywhere.

Credentials, first found wins:

1. ``CONVEYOR_PUSH_USERNAME`` and ``CONVEYOR_PUSH_PASSWORD``;
2. the ``auths`` entry of the registry's host in ``$REGISTRY_AUTH_FILE``,
   ``$XDG_RUNTIME_DIR/containers/auth.json``, ``$DOCKER_CONFIG/config.json`` or
   ``~/.docker/config.json`` (``{"auths": {"registry.example.com": {"auth": base64("user:pw")}}}``,
   as ``docker login`` and ``podman login`` write them). Credential helpers (``credsStore``,
   ``credHelpers``) are not run.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tools.oci.errors import ImageRefError

__all__ = [
    "Credentials",
    "Repository",
    "auth_files",
    "find_credentials",
    "is_loopback",
]

USERNAME_ENV = "CONVEYOR_PUSH_USERNAME"
PASSWORD_ENV = "CONVEYOR_PUSH_PASSWORD"

# The distribution spec's grammar: path components of lowercase alphanumerics and separators.
_PATH_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_HOST = re.compile(r"^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(?::[0-9]+)?$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True)
class Repository:
    """A repository in a registry: ``host`` (``registry.example.com``, ``localhost:5000``) and
    ``name`` (``conveyor/api``)."""

    host: str
    name: str

    @classmethod
    def parse(cls, text: str) -> Repository:
        """Parses ``host[:port]/path``. The host is required: nothing defaults to a public hub."""
        host, _, name = text.strip().partition("/")
        looks_like_host = "." in host or ":" in host or host == "localhost"
        if not name or not looks_like_host or not _HOST.match(host):
            raise ImageRefError(
                f"{text!r} is not <registry>/<path> (e.g. registry.example.com/conveyor/api "
                "or localhost:5000/conveyor/api): the registry host is required"
            )
        if not all(_PATH_COMPONENT.match(part) for part in name.split("/")):
            raise ImageRefError(f"{text!r}: path components must be lowercase [a-z0-9._-]")
        return cls(host, name)

    def __str__(self) -> str:
        return f"{self.host}/{self.name}"

    def with_tag(self, tag: str) -> str:
        """``host/name:tag``."""
        return f"{self}:{check_tag(tag)}"

    def with_digest(self, digest: str) -> str:
        """``host/name@sha256:...``."""
        return f"{self}@{digest}"


def check_tag(tag: str) -> str:
    """Returns ``tag`` if it is a valid tag (``[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}``)."""
    if not _TAG.match(tag):
        raise ImageRefError(f"{tag!r} is not a valid tag")
    return tag


def is_loopback(host: str) -> bool:
    """True for ``localhost``, ``127.x.x.x`` and ``[::1]``, with or without a port."""
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.startswith("[") else host
    name = name.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Credentials:
    """A user name and password (or token) for one registry."""

    username: str
    password: str = field(repr=False)
    source: str = ""
    """Where they came from (an environment variable or a file), for messages."""


def auth_files(environ: Mapping[str, str] = os.environ) -> list[Path]:
    """The auth files searched, in order (existing or not)."""
    paths: list[Path] = []
    if environ.get("REGISTRY_AUTH_FILE"):
        paths.append(Path(environ["REGISTRY_AUTH_FILE"]))
    if environ.get("XDG_RUNTIME_DIR"):
        paths.append(Path(environ["XDG_RUNTIME_DIR"]) / "containers" / "auth.json")
    if environ.get("DOCKER_CONFIG"):
        paths.append(Path(environ["DOCKER_CONFIG"]) / "config.json")
    home = environ.get("HOME")
    if home:
        paths.append(Path(home) / ".docker" / "config.json")
    return paths


def _host_keys(host: str) -> tuple[str, ...]:
    return (host, f"https://{host}", f"http://{host}", f"https://{host}/v1/", f"https://{host}/v2/")


def _from_entry(entry: object, source: str) -> Credentials | None:
    if not isinstance(entry, dict):
        return None
    if isinstance(entry.get("auth"), str) and entry["auth"]:
        try:
            decoded = base64.b64decode(entry["auth"], validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        username, sep, password = decoded.partition(":")
        return Credentials(username, password, source) if sep else None
    if isinstance(entry.get("username"), str) and isinstance(entry.get("password"), str):
        return Credentials(entry["username"], entry["password"], source)
    return None


def find_credentials(host: str, environ: Mapping[str, str] = os.environ) -> Credentials | None:
    """The credentials for ``host`` (see the module docstring), or None."""
    username, password = environ.get(USERNAME_ENV), environ.get(PASSWORD_ENV)
    if username and password is not None:
        return Credentials(username, password, f"${USERNAME_ENV}/${PASSWORD_ENV}")
    for path in auth_files(environ):
        try:
            auths = json.loads(path.read_text()).get("auths", {})
        except (OSError, ValueError, AttributeError):
            continue
        if not isinstance(auths, dict):
            continue
        for key in _host_keys(host):
            found = _from_entry(auths.get(key), str(path))
            if found is not None:
                return found
    return None
