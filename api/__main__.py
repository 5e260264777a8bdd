"""Run the gateway: ``python -m api``."""

import uvicorn

from api.config import Settings
from api.main import create_app


def main() -> None:
    """Serve the gateway on API_HOST:API_PORT."""
    settings = Settings()
    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        loop="uvloop",
        http="httptools",
        access_log=False,  # one log line per request costs more than the request's own work
        server_header=False,
    )


if __name__ == "__main__":
    main()
