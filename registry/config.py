"""Configuration of the registry service, from the environment."""

from pydantic import Field

from conveyor.logs import LogSettings
from conveyor.settings import RedisSettings
from registry.constants import DEFAULT_KEY_PREFIX


class Settings(RedisSettings, LogSettings):
    """Settings of the registry (environment variables, case-insensitive)."""

    registry_host: str = "127.0.0.1"
    registry_port: int = Field(default=8001, ge=0, le=65535)
    liveness_window: float = Field(
        default=5.0, gt=0, le=3600, description="Seconds without heartbeat before 'dead'."
    )
    registry_key_prefix: str = Field(default=DEFAULT_KEY_PREFIX, min_length=1)
    registry_key: str | None = Field(
        default=None,
        min_length=16,
        repr=False,
        description="When set, registering, heartbeats and removals need it as a Bearer token.",
    )
