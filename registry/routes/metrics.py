"""``GET /metrics``: the registry's series in Prometheus' text format, or OpenMetrics when the
scraper asks for it (live instances per model
version, read from the store at each scrape)."""

from fastapi import APIRouter, Request, Response

from conveyor.metrics import RegistryMetrics, negotiated
from registry.store import RegistryStore

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus' text format; ``conveyor_live_instances`` is refreshed from Redis first."""
    state = request.app.state
    store: RegistryStore = state.store
    series: RegistryMetrics = state.metrics
    records = await store.list()
    series.set_instances(
        (record.name, version, entry.instances)
        for record in records
        for version, entry in record.versions.items()
    )
    body, content_type = negotiated(series.registry, request.headers.get("accept"))
    return Response(body, media_type=content_type)
