"""Run traceview: ``python -m traceview``."""

from conveyor.http_server import HttpServer, run
from conveyor.logs import configure_logging
from traceview.config import Settings
from traceview.main import create_app


def main() -> int:
    """Serve OTLP/HTTP, the API and the viewer on TRACEVIEW_HOST:TRACEVIEW_PORT, and OTLP/gRPC
    on TRACEVIEW_GRPC_PORT."""
    settings = Settings()
    configure_logging("traceview", settings.log_format, settings.log_level)
    return run(
        lambda place: HttpServer(create_app(settings)),
        host=settings.traceview_host,
        port=settings.traceview_port,
        name="traceview",
    )


if __name__ == "__main__":
    raise SystemExit(main())
