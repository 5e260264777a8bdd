"""Run the registry: ``python -m registry``."""

from conveyor.http_server import HttpServer, run
from conveyor.logs import configure_logging
from registry.config import Settings
from registry.main import create_app


def main() -> int:
    """Serve the registry on REGISTRY_HOST:REGISTRY_PORT."""
    settings = Settings()
    configure_logging("registry", settings.log_format, settings.log_level)
    return run(
        lambda: HttpServer(create_app(settings)),
        host=settings.registry_host,
        port=settings.registry_port,
        name="registry",
    )


if __name__ == "__main__":
    raise SystemExit(main())
