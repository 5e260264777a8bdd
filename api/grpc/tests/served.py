"""The gateway's gRPC server over fakes, on a free loopback port, and a client for it."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import grpc

from api.config import Settings
from api.edge import Admission
from api.grpc.server import build_server
from api.oip.extensions import ExtensionsView
from api.oip.tests.fakes import FakeCatalog, FakeDispatcher, echo, iris, model_a, model_b
from conveyor.metrics import GatewayMetrics
from proto.oip import grpc_service_pb2_grpc


@dataclass
class Served:
    """A running server: its client stub, channel and the fakes behind it."""

    stub: grpc_service_pb2_grpc.GRPCInferenceServiceStub
    channel: Any
    catalog: FakeCatalog
    dispatcher: Any
    admission: Admission
    metrics: GatewayMetrics


@asynccontextmanager
async def served(
    *,
    catalog: FakeCatalog | None = None,
    dispatcher: Any = None,
    extensions: ExtensionsView | None = None,
    **settings: Any,
) -> AsyncIterator[Served]:
    """Serve model_a (echo) and model_b (iris, versions 1 and 2) until the block ends;
    ``settings`` override the gateway's (``Settings`` fields)."""
    config = Settings(default_timeout=5.0, max_timeout=60.0, **settings)
    catalog = catalog or FakeCatalog([*model_a(), *model_b()])
    dispatcher = dispatcher or FakeDispatcher({"model_a": echo, "model_b": iris})
    metrics = GatewayMetrics()
    admission = Admission(config.max_inflight, metrics=metrics)
    server = build_server(
        catalog=catalog,
        dispatcher=dispatcher,
        admission=admission,
        settings=config,
        metrics=metrics,
        extensions=lambda: extensions,
        version="1",
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Served(
            grpc_service_pb2_grpc.GRPCInferenceServiceStub(channel),
            channel,
            catalog,
            dispatcher,
            admission,
            metrics,
        )
    finally:
        await channel.close()
        await server.stop(0)
