"""Connection settings shared by the services: broker and registry URLs, validated at start-up.

Each service has ONE ``Settings`` class (pydantic-settings, read from the environment,
case-insensitive) built from these mixins, so a URL with a typo fails when the process starts,
naming the variable, instead of at the first request.
"""

from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

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
    "parse_sentinels",
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


def parse_sentinels(value: object) -> object:
    """``host:port,host:port`` as a tuple of ``(host, port)`` pairs (other values unchanged)."""
    if not isinstance(value, str):
        return value
    pairs = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{item!r} is not host:port")
        pairs.append((host.strip("[]"), int(port)))
    return tuple(pairs)


class RedisSettings(ServiceSettings):
    """Where Redis is: one server, or the primary that Redis Sentinel names."""

    redis_url: RedisUrl = DEFAULT_REDIS_URL
    redis_sentinels: Annotated[tuple[tuple[str, int], ...], NoDecode] = Field(
        default=(),
        description="Comma-separated host:port of Redis Sentinels; when set, the services use "
        "the primary of REDIS_MASTER_NAME (REDIS_URL then gives only database and password).",
    )
    redis_master_name: str | None = Field(
        default=None, min_length=1, description="The Sentinel name of the Redis primary."
    )
    redis_wait_replicas: int | Literal["auto"] = Field(
        default="auto",
        description="Workers acknowledge a task only after this many replicas hold its result "
        "(Redis WAIT); 0: do not wait; auto: one, whenever the primary has a replica connected "
        "(checked at most once a second), else none.",
    )
    redis_wait_timeout_ms: int = Field(
        default=1000,
        ge=1,
        le=60_000,
        description="How long a worker waits for the replicas before it stores the result again.",
    )

    @field_validator("redis_wait_replicas")
    @classmethod
    def _replicas_in_range(cls, value: int | str) -> int | str:
        if isinstance(value, int) and not 0 <= value <= 16:
            raise ValueError("REDIS_WAIT_REPLICAS must be auto or a count from 0 to 16")
        return value

    @field_validator("redis_sentinels", mode="before")
    @classmethod
    def _split_sentinels(cls, value: object) -> object:
        return parse_sentinels(value)

    @model_validator(mode="after")
    def _sentinels_need_a_name(self) -> "RedisSettings":
        if self.redis_sentinels and not self.redis_master_name:
            raise ValueError("REDIS_SENTINELS needs REDIS_MASTER_NAME")
        return self


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
