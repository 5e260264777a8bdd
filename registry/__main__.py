"""Run the registry: ``python -m registry``."""

import uvicorn

from conveyor.http_protocol import JsonErrorProtocol
from conveyor.logs import configure_logging
from registry.config import Settings
from registry.main import create_app


def main() -> None:
    """Serve the registry on REGISTRY_HOST:REGISTRY_PORT."""
    settings = Settings()
    configure_logging("registry", settings.log_format, settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.registry_host,
        port=settings.registry_port,
        http=JsonErrorProtocol,  # unparseable requests get a JSON 400, as every other error
        log_config=None,  # configure_logging's format, for uvicorn's lines too
    )


if __name__ == "__main__":
    main()
