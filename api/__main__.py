"""Run the gateway: ``python -m api``."""

import uvicorn

from api.config import Settings
from api.main import create_app
from api.wire import gateway_protocol
from conveyor.logs import configure_logging


def main() -> None:
    """Serve the gateway on API_HOST:API_PORT."""
    settings = Settings()
    configure_logging("api", settings.log_format, settings.log_level)
    app = create_app(settings)
    assert app.edge is not None
    uvicorn.run(
        app,
        host=settings.api_host,
        port=settings.api_port,
        loop="uvloop",
        # httptools, refusing past MAX_INFLIGHT without entering the app, one write per answer
        http=gateway_protocol(app.edge),
        access_log=False,  # one log line per request costs more than the request's own work
        server_header=False,
        # Nothing in the gateway reads the client's address: no X-Forwarded-* rewriting layer
        # in front of every request.
        proxy_headers=False,
        log_config=None,  # configure_logging's format, for uvicorn's lines too
    )


if __name__ == "__main__":
    main()
