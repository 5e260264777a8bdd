"""Dependencies of traceview's routes, as ``Annotated`` aliases."""

from typing import Annotated

from fastapi import Depends, Request

from traceview.store import TraceStore


def get_store(request: Request) -> TraceStore:
    """The app's trace store."""
    store: TraceStore = request.app.state.store
    return store


Store = Annotated[TraceStore, Depends(get_store)]
