"""Configuration of the gateway, from the environment."""

import re
from typing import Annotated

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode

from conveyor.logs import LogSettings
from conveyor.settings import AmqpSettings, RedisSettings, RegistryClientSettings

_ORIGIN = re.compile(r"[a-z][a-z0-9+.-]*://[^/?#\s]+")


class Settings(AmqpSettings, RedisSettings, RegistryClientSettings, LogSettings):
    """Settings of the gateway (environment variables, case-insensitive)."""

    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=0, le=65535)
    grpc_port: int = Field(
        default=8081,
        ge=0,
        le=65535,
        description="Port of the Open Inference Protocol over gRPC (on API_HOST, in every "
        "gateway process); 0 turns it off.",
    )
    api_workers: int = Field(
        default=1,
        ge=1,
        le=256,
        description="Gateway processes serving API_PORT (each its own connections, channels "
        "and MAX_INFLIGHT), under one supervisor that restarts a dead one.",
    )
    default_timeout: float = Field(
        default=30.0, gt=0, description="Seconds a synchronous predict waits for its result."
    )
    min_timeout: float = Field(default=0.01, gt=0, description="Smallest ?timeout= accepted.")
    max_timeout: float = Field(default=300.0, gt=0, description="Largest ?timeout= accepted.")
    async_deadline: float = Field(
        default=3600.0, gt=0, description="Seconds an async task may wait in its queue."
    )
    result_ttl: int = Field(default=3600, ge=1, le=7 * 24 * 3600)
    idempotency_ttl: int = Field(
        default=24 * 3600,
        ge=1,
        le=30 * 24 * 3600,
        description="Seconds an async submit's Idempotency-Key names its task.",
    )
    max_waiting: int = Field(
        default=1000,
        ge=1,
        le=100_000,
        description="Requests that may wait on tasks at once (GET /tasks/{id}?wait=, "
        "GET /tasks/{id}/events, streams) before 429; they do not count against MAX_INFLIGHT.",
    )
    stream_buffer: int = Field(
        default=64,
        ge=1,
        le=10_000,
        description="Pieces of a streamed response a gateway holds for a client slower than "
        "the model; past them it drops the pushed pieces and reads them from Redis once the "
        "client catches up.",
    )
    max_task_retries: int = Field(
        default=10,
        ge=0,
        le=100,
        description="Largest ?max_retries= a request may ask for (retries after a model's "
        "retryable failure).",
    )
    callback_secret: str = Field(
        default="",
        repr=False,
        description="Key of the HMAC-SHA256 signature (Conveyor-Signature) of every callback; "
        "empty: callbacks are sent unsigned.",
    )
    callback_allowed_hosts: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="Comma-separated host names (or '*.example.com' suffixes) a callback URL "
        "may name; empty: any host.",
    )
    callback_max_attempts: int = Field(
        default=8,
        ge=1,
        le=100,
        description="Deliveries tried per callback before it is kept as undeliverable.",
    )
    callback_timeout: float = Field(
        default=10.0, gt=0, le=300, description="Seconds one callback delivery may take."
    )
    callback_concurrency: int = Field(
        default=32, ge=1, le=10_000, description="Callback deliveries in flight per gateway."
    )
    callback_backoff_seconds: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="Longest wait before the first retry of a failed callback; each later "
        "wait's bound doubles (full jitter: a random wait up to the bound).",
    )
    registry_cache_seconds: float = Field(default=1.0, ge=0, le=60)
    max_inflight: int = Field(
        default=512, ge=1, le=100_000, description="Requests in progress before 429."
    )
    retry_after: int = Field(
        default=1, ge=1, le=3600, description="Seconds a 429 or 503 asks the client to wait."
    )
    max_body_bytes: int = Field(
        default=1024 * 1024, ge=1024, le=1024**3, description="Largest request body (413)."
    )
    max_json_depth: int = Field(default=32, ge=2, le=1000, description="Deepest JSON body.")
    sync_durable: bool = Field(
        default=False,
        description="Send synchronous tasks through the durable lane too (persistent, "
        "replicated) instead of the fast lane.",
    )
    metrics_enabled: bool = Field(
        default=True, description="Count requests for GET /metrics and the dashboard."
    )
    dashboard_sample_seconds: float = Field(
        default=2.0,
        ge=0.2,
        le=60,
        description="How often the dashboard's figures and the queue gauges are refreshed.",
    )
    api_keys: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        repr=False,
        description="Comma-separated keys; when set, predict, tasks and models need one as "
        "'Authorization: Bearer <key>'.",
    )

    cors_origins: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="Comma-separated origins (scheme://host[:port]) whose pages may call the "
        "gateway from a browser, or '*' for any; empty: no CORS headers at all.",
    )

    @field_validator("api_keys", "cors_origins", "callback_allowed_hosts", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(key.strip() for key in value.split(",") if key.strip())
        return value

    @field_validator("cors_origins")
    @classmethod
    def _origins_well_formed(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        """Each origin as browsers send it (lower case), or '*'."""
        for origin in value:
            if origin != "*" and not _ORIGIN.fullmatch(origin.lower()):
                raise ValueError(
                    f"{origin!r} is not an origin: scheme://host[:port], no path nor a "
                    "trailing '/' (or '*' for any)"
                )
        return tuple(origin.lower() for origin in value)

    @field_validator("callback_allowed_hosts")
    @classmethod
    def _hosts_lower(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(host.lower().rstrip(".") for host in value)

    @field_validator("api_keys")
    @classmethod
    def _keys_long_enough(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(len(key) < 16 for key in value):
            raise ValueError("every API key must have at least 16 characters")
        return value

    @model_validator(mode="after")
    def _timeouts_consistent(self) -> "Settings":
        if not self.min_timeout <= self.default_timeout <= self.max_timeout:
            raise ValueError("need min_timeout <= default_timeout <= max_timeout")
        return self
