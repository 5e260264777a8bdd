"""Run the gateway: ``python -m api``."""

from api.config import Settings
from api.edge import Admission
from api.main import create_app
from conveyor import tracing
from conveyor.http_server import HttpServer, run
from conveyor.logs import configure_logging
from conveyor.sibling_metrics import group_token


def main() -> int:
    """Serve the gateway on API_HOST:API_PORT, in API_WORKERS processes."""
    settings = Settings()
    configure_logging("api", settings.log_format, settings.log_level)

    # With several processes, a scrape of any of them answers all of them (their group).
    group = group_token() if settings.api_workers > 1 else None

    def server(place: int) -> HttpServer:
        tracing.configure(tracing.GATEWAY)  # in each serving process, after the fork
        app = create_app(settings, siblings=None if group is None else (group, place))
        admission: Admission = app.state.admission
        # Past MAX_INFLIGHT the protocol answers the prerendered 429 itself, before any ASGI
        # work; bytes that are not HTTP get the error object in the shape of the path's API.
        return HttpServer(app, gate=admission, error_answer=admission.protocol_answer)

    return run(
        server,
        host=settings.api_host,
        port=settings.api_port,
        processes=settings.api_workers,
        name="api",
    )


if __name__ == "__main__":
    raise SystemExit(main())
