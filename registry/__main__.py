"""Run the registry: ``python -m registry``."""

import uvicorn

from registry.config import Settings
from registry.main import create_app


def main() -> None:
    """Serve the registry on REGISTRY_HOST:REGISTRY_PORT."""
    settings = Settings()
    uvicorn.run(create_app(settings), host=settings.registry_host, port=settings.registry_port)


if __name__ == "__main__":
    main()
