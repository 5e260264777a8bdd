"""Configuration of a model worker, from the environment."""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Settings of one worker process (environment variables, case-insensitive)."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    redis_url: str = "redis://127.0.0.1:6379/0"
    registry_url: str = "http://127.0.0.1:8001"
    model_name: str | None = Field(
        default=None, description="Overrides the model class's name (e.g. for tests)."
    )
    worker_prefetch: int = Field(default=4, ge=1, le=1000)
    heartbeat_interval: float = Field(default=1.0, gt=0, le=60)
    registry_timeout: float = Field(default=5.0, gt=0, le=120)
    default_result_ttl: int = Field(default=3600, ge=1, le=7 * 24 * 3600)
    broker_connect_timeout: float = Field(
        default=60.0, gt=0, le=3600, description="Seconds to keep retrying RabbitMQ at start-up."
    )
    shutdown_grace: float = Field(default=30.0, gt=0, le=3600)
