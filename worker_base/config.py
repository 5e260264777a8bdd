"""Configuration of a model worker, from the environment."""

from pydantic import Field, model_validator

from conveyor.logs import LogSettings
from conveyor.protocol import MAX_STREAM_CHUNKS
from conveyor.settings import AmqpSettings, RedisSettings, RegistryClientSettings


class Settings(AmqpSettings, RedisSettings, RegistryClientSettings, LogSettings):
    """Settings of a model worker (environment variables, case-insensitive).

    ``WORKER_PROCESSES`` above 1 runs that many worker processes under one supervisor, each
    with these settings (its own consumer, registry instance and ``WORKER_CONCURRENCY``).
    """

    model_name: str | None = Field(
        default=None, description="Overrides the model class's name (e.g. for tests)."
    )
    model_version: str | None = Field(
        default=None, description="Overrides the model class's version."
    )
    worker_prefetch: int | None = Field(
        default=None,
        ge=1,
        le=10000,
        description="Unacknowledged tasks per queue; default: concurrency x batch, at least 64.",
    )
    worker_processes: int = Field(
        default=1,
        ge=1,
        le=256,
        description="Worker processes, each its own consumer and registry instance; above 1 "
        "one supervisor process restarts any that dies (for CPU-bound models).",
    )
    worker_concurrency: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description="Tasks (or batches) the worker runs at once; default: the model's "
        "concurrency (4 unless it says).",
    )
    max_batch_size: int | None = Field(
        default=None, ge=1, le=4096, description="Overrides the model's batch size; 1: no batching."
    )
    max_batch_delay_ms: float | None = Field(
        default=None, ge=0, le=10000, description="Overrides the model's batch delay."
    )
    max_queued_tasks: int = Field(
        default=1000, ge=1, le=10_000_000, description="Ready tasks per queue before 429."
    )
    max_deliveries: int = Field(
        default=3,
        ge=1,
        le=100,
        description="A task whose worker died this many times is dead-lettered.",
    )
    max_retries: int | None = Field(
        default=None,
        ge=0,
        le=100,
        description="Overrides the model's max_retries: how often a task is run again after a "
        "retryable failure (a request's max_retries replaces either).",
    )
    retry_backoff_ms: int = Field(
        default=1000,
        ge=100,
        le=3_600_000,
        description="The first retry's backoff; each later retry doubles it (with jitter).",
    )
    retry_backoff_max_ms: int = Field(
        default=60_000,
        ge=100,
        le=3_600_000,
        description="The largest backoff of a retry (RETRY_BACKOFF_MS or more).",
    )
    max_stream_chunks: int = Field(
        default=MAX_STREAM_CHUNKS,
        ge=1,
        le=1_000_000,
        description="The most pieces one run of a streamed task may yield; past it the task "
        "fails (MODEL_ERROR).",
    )
    heartbeat_interval: float = Field(default=1.0, gt=0, le=60)
    default_result_ttl: int = Field(default=3600, ge=1, le=7 * 24 * 3600)
    shutdown_grace: float = Field(default=30.0, gt=0, le=3600)
    registry_key: str | None = Field(
        default=None, repr=False, description="Sent to the registry when it requires one."
    )
    metrics_port: int = Field(
        default=9200,
        ge=0,
        le=65535,
        description="Port of the worker's GET /metrics (0: none); a port already taken is "
        "logged and skipped.",
    )
    metrics_host: str = Field(default="0.0.0.0", description="Address of GET /metrics.")

    @model_validator(mode="after")
    def _backoff_consistent(self) -> "Settings":
        if self.retry_backoff_max_ms < self.retry_backoff_ms:
            raise ValueError("need retry_backoff_ms <= retry_backoff_max_ms")
        return self
