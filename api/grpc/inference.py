"""``inference.GRPCInferenceService``: the Open Inference Protocol's calls over gRPC.

Each call goes through the ``CallEdge`` (keys, in-flight bound, request id, metrics, errors as
statuses), then does what the REST route of the same name does, with the same catalog,
dispatcher and tensor machinery (``api.oip``): the two transports answer alike.

- ``ServerLive`` / ``ServerReady`` / ``ModelReady``: as ``/v2/health/*`` and ``.../ready``;
  an unknown model is not ready (Triton answers so, rather than an error).
- ``ServerMetadata`` / ``ModelMetadata``: as ``GET /v2`` and ``GET /v2/models/{m}``.
- ``ModelInfer``: inputs in ``contents`` or ``raw_input_contents`` (``api.grpc.tensors``),
  ``parameters`` as on REST (``timeout`` and ``priority`` with Triton's meanings); the call's
  deadline counts as its timeout (``api.oip.parameters``).
- ``ModelStreamInfer``: the same requests, each answered in pieces as the model yields them,
  as Triton answers for a decoupled model (``api.grpc.streaming``).
- ``ModelStatistics`` / ``ModelConfig`` / ``RepositoryIndex``: the gateway's
  ``ExtensionsView`` rendered by ``api.grpc.extensions``; UNIMPLEMENTED while the gateway has
  none.
- ``RepositoryModelLoad`` / ``RepositoryModelUnload``: UNIMPLEMENTED, models register
  themselves.
"""

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Final

from api.exceptions import ModelNotFound
from api.grpc.edge import Call, CallEdge, Method
from api.grpc.extensions import config_response, index_response, statistics_response
from api.grpc.health import failing_dependencies
from api.grpc.streaming import StreamInfer
from api.grpc.tensors import infer_response, parameters_of, read_inputs
from api.oip.exceptions import OipError
from api.oip.execute import execute
from api.oip.extensions import ExtensionsView
from api.oip.infer import RequestOutput, infer_options, wanted_outputs
from api.oip.ports import Catalog, Dispatcher
from api.oip.routes import EXTENSIONS, PLATFORM, SERVER_NAME
from api.oip.tensors import mapping_for
from proto.oip import grpc_service_pb2 as pb
from proto.oip import grpc_service_pb2_grpc

__all__ = ["SERVICE", "InferenceServicer", "Limits"]

SERVICE: Final = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name
"""``inference.GRPCInferenceService``."""

UNSUPPORTED_REPOSITORY: Final = "unsupported: models register themselves"


class Unimplemented(OipError):
    """A call the gateway does not implement (UNIMPLEMENTED)."""

    code = "unimplemented"
    status = 501


def _method(name: str, endpoint: str = "grpc", *, open: bool = False) -> Method:
    return Method(f"/{SERVICE}/{name}", endpoint, open)


_LIVE = _method("ServerLive", open=True)
_READY = _method("ServerReady", open=True)
_MODEL_READY = _method("ModelReady")
_SERVER_METADATA = _method("ServerMetadata")
_MODEL_METADATA = _method("ModelMetadata")
_INFER = _method("ModelInfer", "grpc_infer")
_STREAM = _method("ModelStreamInfer", "grpc_stream")
_STATISTICS = _method("ModelStatistics")
_CONFIG = _method("ModelConfig")
_INDEX = _method("RepositoryIndex")
_LOAD = _method("RepositoryModelLoad")
_UNLOAD = _method("RepositoryModelUnload")


@dataclass(frozen=True)
class Limits:
    """The gateway's timeouts, in seconds (``DEFAULT_TIMEOUT``, ``MAX_TIMEOUT``)."""

    default_timeout: float
    max_timeout: float


class InferenceServicer(grpc_service_pb2_grpc.GRPCInferenceServiceServicer):
    """The service (register it with ``add_GRPCInferenceServiceServicer_to_server``).

    ``extensions`` returns the gateway's ``ExtensionsView`` at call time (None: the
    extension calls answer UNIMPLEMENTED); ``version`` is the server version it reports.
    """

    def __init__(
        self,
        *,
        catalog: Catalog,
        dispatcher: Dispatcher,
        edge: CallEdge,
        limits: Limits,
        extensions: Callable[[], ExtensionsView | None] = lambda: None,
        version: str = "1",
    ) -> None:
        self._catalog = catalog
        self._dispatcher = dispatcher
        self._edge = edge
        self._limits = limits
        self._extensions = extensions
        self._version = version

    async def ServerLive(
        self, request: pb.ServerLiveRequest, context: Any
    ) -> pb.ServerLiveResponse:
        """Live while the process answers."""

        async def live(call: Call) -> pb.ServerLiveResponse:
            return pb.ServerLiveResponse(live=True)

        return await self._edge.serve(context, _LIVE, live)

    async def ServerReady(
        self, request: pb.ServerReadyRequest, context: Any
    ) -> pb.ServerReadyResponse:
        """Ready while RabbitMQ, Redis and the registry answer."""

        async def ready(call: Call) -> pb.ServerReadyResponse:
            failing = await failing_dependencies(self._catalog, self._dispatcher)
            return pb.ServerReadyResponse(ready=not failing)

        return await self._edge.serve(context, _READY, ready)

    async def ModelReady(
        self, request: pb.ModelReadyRequest, context: Any
    ) -> pb.ModelReadyResponse:
        """Ready while the model (version) has a live worker; an unknown one is not ready."""

        async def ready(call: Call) -> pb.ModelReadyResponse:
            try:
                info = await self._catalog.get(request.name, request.version or None)
            except ModelNotFound:
                return pb.ModelReadyResponse(ready=False)
            return pb.ModelReadyResponse(ready=info.alive)

        return await self._edge.serve(context, _MODEL_READY, ready)

    async def ServerMetadata(
        self, request: pb.ServerMetadataRequest, context: Any
    ) -> pb.ServerMetadataResponse:
        """The server's name, version and protocol extensions."""

        async def metadata(call: Call) -> pb.ServerMetadataResponse:
            return pb.ServerMetadataResponse(
                name=SERVER_NAME, version=self._version, extensions=EXTENSIONS
            )

        return await self._edge.serve(context, _SERVER_METADATA, metadata)

    async def ModelMetadata(
        self, request: pb.ModelMetadataRequest, context: Any
    ) -> pb.ModelMetadataResponse:
        """A model version's versions, platform and tensors."""

        async def metadata(call: Call) -> pb.ModelMetadataResponse:
            info = await self._catalog.get(request.name, request.version or None)
            tensor = pb.ModelMetadataResponse.TensorMetadata
            return pb.ModelMetadataResponse(
                name=info.name,
                versions=info.versions,
                platform=PLATFORM,
                inputs=[
                    tensor(name=s.name, datatype=s.datatype, shape=s.shape)
                    for s in mapping_for(info.request_class.DESCRIPTOR).specs
                ],
                outputs=[
                    tensor(name=s.name, datatype=s.datatype, shape=s.shape)
                    for s in mapping_for(info.response_class.DESCRIPTOR).specs
                ],
            )

        return await self._edge.serve(context, _MODEL_METADATA, metadata)

    async def ModelInfer(
        self, request: pb.ModelInferRequest, context: Any
    ) -> pb.ModelInferResponse:
        """Run the model on the request's tensors; answer its output tensors."""

        async def infer(call: Call) -> pb.ModelInferResponse:
            info = await self._catalog.get(request.model_name, request.model_version or None)
            options = infer_options(
                parameters_of(request.parameters),
                request.id or None,
                self._limits.default_timeout,
                self._limits.max_timeout,
                deadline=call.deadline,
            )
            requested = [
                RequestOutput(name=o.name, parameters=parameters_of(o.parameters))
                for o in request.outputs
            ]
            wanted = wanted_outputs(
                requested or None, mapping_for(info.response_class.DESCRIPTOR).specs, False
            )
            declared = mapping_for(info.request_class.DESCRIPTOR).declared
            inputs, raw = read_inputs(request, declared)
            outcome = await execute(
                info,
                self._dispatcher,
                inputs,
                options,
                arrival=call.arrival,
                request_id=call.request_id,
            )
            return infer_response(
                model_name=info.name,
                model_version=info.version,
                request_id=options.request_id,
                outcome=outcome,
                wanted=wanted,
                raw=raw,
            )

        return await self._edge.serve(context, _INFER, infer)

    # grpc.aio takes a coroutine for a streaming method that writes with ``context.write``
    # (the generated servicer types only the generator form).
    async def ModelStreamInfer(  # type: ignore[override]
        self, request_iterator: AsyncIterator[pb.ModelInferRequest], context: Any
    ) -> None:
        """Run each request the client sends as a stream; answer each piece as it comes, as
        Triton answers for a decoupled model (``api.grpc.streaming``)."""
        admission = self._edge.admission

        def count(step: int) -> None:
            admission.inflight += step

        async def stream(call: Call) -> None:
            streamer = StreamInfer(
                catalog=self._catalog,
                dispatcher=self._dispatcher,
                default_timeout=self._limits.default_timeout,
                max_timeout=self._limits.max_timeout,
                sheds=lambda: admission.sheds(_STREAM.path),
                count=count,
            )
            await streamer.serve(request_iterator, context.write, call)

        await self._edge.serve(context, _STREAM, stream)

    async def ModelStatistics(
        self, request: pb.ModelStatisticsRequest, context: Any
    ) -> pb.ModelStatisticsResponse:
        """Request counts and durations of every model, one model or one version."""

        async def statistics(call: Call) -> pb.ModelStatisticsResponse:
            view = self._extension("statistics")
            stats = await view.statistics(request.name or None, request.version or None)
            return statistics_response(stats)

        return await self._edge.serve(context, _STATISTICS, statistics)

    async def ModelConfig(
        self, request: pb.ModelConfigRequest, context: Any
    ) -> pb.ModelConfigResponse:
        """A model version's configuration."""

        async def config(call: Call) -> pb.ModelConfigResponse:
            view = self._extension("model configuration")
            return config_response(await view.configuration(request.name, request.version or None))

        return await self._edge.serve(context, _CONFIG, config)

    async def RepositoryIndex(
        self, request: pb.RepositoryIndexRequest, context: Any
    ) -> pb.RepositoryIndexResponse:
        """Every registered model version and its state (the registry is the one repository,
        whatever ``repository_name`` says)."""

        async def index(call: Call) -> pb.RepositoryIndexResponse:
            view = self._extension("model repository")
            return index_response(await view.repository_index(ready_only=request.ready))

        return await self._edge.serve(context, _INDEX, index)

    async def RepositoryModelLoad(
        self, request: pb.RepositoryModelLoadRequest, context: Any
    ) -> pb.RepositoryModelLoadResponse:
        """Refused: a model is loaded by starting its worker, which registers it."""
        return await self._edge.serve(context, _LOAD, _unsupported)

    async def RepositoryModelUnload(
        self, request: pb.RepositoryModelUnloadRequest, context: Any
    ) -> pb.RepositoryModelUnloadResponse:
        """Refused: a model is unloaded by stopping its workers."""
        return await self._edge.serve(context, _UNLOAD, _unsupported)

    def _extension(self, what: str) -> ExtensionsView:
        view = self._extensions()
        if view is None:
            raise Unimplemented(f"the {what} extension is not available on this gateway")
        return view


async def _unsupported(call: Call) -> Any:
    raise Unimplemented(UNSUPPORTED_REPOSITORY)
