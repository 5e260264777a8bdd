"""``GET /metrics``: the gateway's series in Prometheus' text format, or OpenMetrics (with the
latency histograms' exemplars) when the scraper asks for it."""

from fastapi import APIRouter, Request, Response

from conveyor.metrics import GatewayMetrics, negotiated
from conveyor.sibling_metrics import Siblings
from conveyor.web import error_response

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus' text format (OpenMetrics for ``Accept: application/openmetrics-text``); the
    queue gauges are as fresh as the monitor's last sample
    (``DASHBOARD_SAMPLE_SECONDS``). With ``API_WORKERS`` above 1, the series of every gateway
    process merged (``conveyor.sibling_metrics``)."""
    series: GatewayMetrics | None = request.app.state.metrics
    if series is None:
        return error_response(
            404, "metrics_disabled", "metrics are off (METRICS_ENABLED=false)", model=None,
            field=None,
        )  # fmt: skip
    siblings: Siblings | None = request.app.state.metric_siblings
    if siblings is not None:
        body, content_type = await siblings.exposition(request.headers.get("accept"))
    else:
        body, content_type = negotiated(series.registry, request.headers.get("accept"))
    return Response(body, media_type=content_type)
