"""What the v2 routes need from the gateway's catalog and dispatcher, as typed seams.

The routes take ``app.state.catalog`` and ``app.state.dispatcher`` through these protocols, so
they depend on the calls they make, not on one implementation (unit tests pass fakes).
"""

from collections.abc import Sequence
from typing import Annotated, Any, Protocol

from fastapi import Depends, Request
from google.protobuf.message import Message

from api.pieces import Streamer
from proto import task_pb2


class ModelView(Protocol):
    """A model version as the catalog resolves it (``api.catalog.ModelInfo``)."""

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str:
        """The version resolved: the one asked for, else the default (highest live)."""
        ...

    @property
    def versions(self) -> Sequence[str]:
        """Every registered version of the model."""
        ...

    @property
    def alive(self) -> bool:
        """True when this version has a live instance."""
        ...

    @property
    def request_class(self) -> type[Message]: ...

    @property
    def response_class(self) -> type[Message]: ...


class Catalog(Protocol):
    """The gateway's model catalog."""

    async def get(self, name: str, version: str | None = None) -> ModelView:
        """Resolve a model (and version); raise ``ModelNotFound`` (unknown model or version)
        or ``RegistryUnavailable``."""
        ...

    async def ping(self) -> bool:
        """True when the registry answers."""
        ...


class Dispatcher(Streamer, Protocol):
    """The gateway's task dispatcher (``stream``: a streamed task, ``api.pieces.Streamer``)."""

    async def run(
        self,
        info: Any,
        payload: bytes,
        *,
        seconds: float,
        priority: int,
        request_id: str,
    ) -> task_pb2.TaskResult:
        """Submit the serialized request message for ``info`` (the object ``Catalog.get``
        returned) and wait up to ``seconds`` for its result; raise ``ResultTimeout``,
        ``ModelUnavailable`` or the overload error."""
        ...

    async def ready(self) -> dict[str, bool]:
        """Whether each broker is usable."""
        ...


async def get_catalog(request: Request) -> Catalog:
    """The catalog of the app serving the request."""
    catalog: Catalog = request.app.state.catalog
    return catalog


async def get_dispatcher(request: Request) -> Dispatcher:
    """The dispatcher of the app serving the request."""
    dispatcher: Dispatcher = request.app.state.dispatcher
    return dispatcher


CatalogDep = Annotated[Catalog, Depends(get_catalog)]
DispatcherDep = Annotated[Dispatcher, Depends(get_dispatcher)]
