"""``GET /metrics``: the gateway's series in Prometheus' text format."""

from fastapi import APIRouter, Request, Response

from conveyor.metrics import CONTENT_TYPE, GatewayMetrics, exposition
from conveyor.web import error_response

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus' text format; the queue gauges are as fresh as the monitor's last sample
    (``DASHBOARD_SAMPLE_SECONDS``)."""
    series: GatewayMetrics | None = request.app.state.metrics
    if series is None:
        return error_response(
            404, "metrics_disabled", "metrics are off (METRICS_ENABLED=false)", model=None,
            field=None,
        )  # fmt: skip
    return Response(exposition(series.registry), media_type=CONTENT_TYPE)
