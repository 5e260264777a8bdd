"""Configuration of traceview, from the environment."""

from pydantic import Field

from conveyor.logs import LogSettings


class Settings(LogSettings):
    """Settings of traceview (environment variables, case-insensitive)."""

    traceview_host: str = "127.0.0.1"
    traceview_port: int = Field(
        default=4318, ge=0, le=65535, description="OTLP/HTTP, the JSON API and the viewer."
    )
    traceview_grpc_port: int = Field(
        default=4317, ge=0, le=65535, description="OTLP/gRPC TraceService; 0: off."
    )
    traceview_max_spans: int = Field(
        default=200_000,
        ge=1,
        le=100_000_000,
        description="Spans kept in memory; past it the oldest traces go, whole.",
    )
