"""Connection settings shared by the services: broker and registry URLs, validated at start-up.

Each service has ONE ``Settings`` class (pydantic-settings, read from the environment,
case-insensitive) built from these mixins, so a URL with a typo fails when the process starts,
naming the variable, instead of at the first request.
"""

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "AmqpSettings",
    "AmqpUrl",
    "HttpUrl",
    "RedisSettings",
    "RedisUrl",
    "RegistryClientSettings",
    "ServiceSettings",
    "check_amqp_urls",
    "check_url",
]

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_REGISTRY_URL = "http://127.0.0.1:8001"


def check_url(url: str, schemes: tuple[str, ...]) -> str:
    """Return ``url`` if it has one of ``schemes`` and a host; raise ``ValueError`` otherwise."""
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError for a port that is not a number
    except ValueError as e:
        raise ValueError(f"not a valid URL: {e}") from e
    if parts.scheme not in schemes:
        raise ValueError(f"scheme must be one of {', '.join(schemes)}, not {parts.scheme!r}")
    if parts.scheme != "unix" and not parts.hostname:
        raise ValueError("the URL names no host")
    if port == 0:
        raise ValueError("port 0 is not a port to connect to")
    return url


def check_amqp_urls(value: str) -> str:
    """Return ``value``, one AMQP URL or several comma-separated, if each is valid."""
    urls = [part.strip() for part in value.split(",") if part.strip()]
    if not urls:
        raise ValueError("names no RabbitMQ node")
    for index, url in enumerate(urls):
        try:
            check_url(url, ("amqp", "amqps"))
        except ValueError as e:
            raise ValueError(f"node {index + 1} of {len(urls)}: {e}") from e
    return ",".join(urls)


AmqpUrl = Annotated[str, AfterValidator(check_amqp_urls)]
"""One RabbitMQ URL (``amqp://user:password@host:port/vhost``) or several, comma-separated: the
nodes of one cluster, tried in order at start-up and in turn on connection loss."""

RedisUrl = Annotated[str, AfterValidator(lambda url: check_url(url, ("redis", "rediss", "unix")))]
"""A Redis URL (``redis://host:port/db``, ``rediss://`` or ``unix://``)."""

HttpUrl = Annotated[str, AfterValidator(lambda url: check_url(url, ("http", "https")).rstrip("/"))]
"""An HTTP base URL, without a trailing slash."""


class ServiceSettings(BaseSettings):
    """Base of every service's settings: environment variables without prefix."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore")


class RedisSettings(ServiceSettings):
    """Where Redis is."""

    redis_url: RedisUrl = DEFAULT_REDIS_URL


class AmqpSettings(ServiceSettings):
    """Where RabbitMQ is, and how long to wait for it at start-up."""

    amqp_url: AmqpUrl = Field(
        default=DEFAULT_AMQP_URL,
        description="One RabbitMQ node, or several comma-separated (the nodes of a cluster): "
        "the service connects to the first that answers and fails over to the next.",
    )
    broker_connect_timeout: float = Field(
        default=60.0, gt=0, le=3600, description="Seconds to keep retrying RabbitMQ at start-up."
    )


class RegistryClientSettings(ServiceSettings):
    """Where the registry is, for its clients (the gateway and the workers)."""

    registry_url: HttpUrl = DEFAULT_REGISTRY_URL
    registry_timeout: float = Field(default=5.0, gt=0, le=120)
