"""Configuration of a model worker, from the environment."""

from pydantic import Field

from conveyor.settings import AmqpSettings, RedisSettings, RegistryClientSettings


class Settings(AmqpSettings, RedisSettings, RegistryClientSettings):
    """Settings of one worker process (environment variables, case-insensitive)."""

    model_name: str | None = Field(
        default=None, description="Overrides the model class's name (e.g. for tests)."
    )
    worker_prefetch: int = Field(default=4, ge=1, le=1000)
    heartbeat_interval: float = Field(default=1.0, gt=0, le=60)
    default_result_ttl: int = Field(default=3600, ge=1, le=7 * 24 * 3600)
    shutdown_grace: float = Field(default=30.0, gt=0, le=3600)
