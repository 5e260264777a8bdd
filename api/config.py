"""Configuration of the gateway, from the environment."""

from pydantic import Field, model_validator

from conveyor.settings import AmqpSettings, RedisSettings, RegistryClientSettings


class Settings(AmqpSettings, RedisSettings, RegistryClientSettings):
    """Settings of the gateway (environment variables, case-insensitive)."""

    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=0, le=65535)
    default_timeout: float = Field(
        default=30.0, gt=0, description="Seconds a synchronous predict waits for its result."
    )
    max_timeout: float = Field(default=300.0, gt=0, description="Largest ?timeout= accepted.")
    async_deadline: float = Field(
        default=3600.0, gt=0, description="Seconds an async task may wait in its queue."
    )
    result_ttl: int = Field(default=3600, ge=1, le=7 * 24 * 3600)
    registry_cache_seconds: float = Field(default=1.0, ge=0, le=60)

    @model_validator(mode="after")
    def _timeouts_consistent(self) -> "Settings":
        if self.default_timeout > self.max_timeout:
            raise ValueError("default_timeout must not exceed max_timeout")
        return self
