"""Run the registry: ``python -m registry``."""

from conveyor import tracing
from conveyor.http_server import HttpServer, run
from conveyor.logs import configure_logging
from registry.config import Settings
from registry.main import create_app


def main() -> int:
    """Serve the registry on REGISTRY_HOST:REGISTRY_PORT."""
    settings = Settings()
    configure_logging("registry", settings.log_format, settings.log_level)

    def server(place: int) -> HttpServer:
        tracing.configure(tracing.REGISTRY)  # in the serving process (OTEL_* variables)
        return HttpServer(create_app(settings))

    return run(
        server,
        host=settings.registry_host,
        port=settings.registry_port,
        name="registry",
    )


if __name__ == "__main__":
    raise SystemExit(main())
