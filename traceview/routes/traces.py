"""The JSON API over the store: services, trace summaries, one trace, clearing."""

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from conveyor.web import ErrorBody
from traceview.deps import Store
from traceview.exceptions import TraceNotFound
from traceview.spans import TRACE_ID_PATTERN

router = APIRouter(prefix="/api", tags=["traces"])

MAX_LIMIT = 1000


@router.get("/services")
async def services(store: Store) -> dict[str, list[str]]:
    """Every service with a span in the store: ``{"services": [...]}``, sorted."""
    return {"services": store.services()}


@router.get("/traces")
async def traces(
    store: Store,
    service: Annotated[str | None, Query(description="Only traces this service is in")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 20,
    min_duration_ms: Annotated[float, Query(ge=0)] = 0.0,
) -> dict[str, list[dict[str, Any]]]:
    """Trace summaries, newest start first: ``{"traces": [{"trace_id", "root_name",
    "root_service", "services", "start_unix_nano", "duration_ms", "span_count", "error"}]}``."""
    found = store.summaries(service=service, limit=limit, min_duration_ms=min_duration_ms)
    return {"traces": found}


@router.get("/traces/{trace_id}", responses={404: {"model": ErrorBody}})
async def trace(
    store: Store,
    trace_id: Annotated[str, Path(pattern=TRACE_ID_PATTERN, description="32 hex digits")],
) -> dict[str, Any]:
    """One trace's spans by start time: ``{"trace_id", "spans": [...]}``; 404 if unknown."""
    found = store.trace(trace_id)
    if found is None:
        raise TraceNotFound(f"no trace {trace_id.lower()} here (never received, or evicted)")
    return {"trace_id": found.trace_id, "spans": found.sorted_spans()}


@router.delete("/traces")
async def clear(store: Store) -> dict[str, int]:
    """Forget every trace: ``{"deleted": <traces forgotten>}``."""
    deleted = len(store)
    store.clear()
    return {"deleted": deleted}
