"""gRPC health checking (SERVING while the gateway is ready) and server reflection."""

import asyncio
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from api.grpc.health import Health
from api.grpc.tests.served import served

pytestmark = pytest.mark.asyncio

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def test_check_follows_readiness() -> None:
    async with served() as s:
        health = health_pb2_grpc.HealthStub(s.channel)
        for service in ("", "inference.GRPCInferenceService"):
            answer = await health.Check(health_pb2.HealthCheckRequest(service=service))
            assert answer.status == SERVING
        s.catalog.registry_up = False
        assert (await health.Check(health_pb2.HealthCheckRequest())).status == NOT_SERVING
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await health.Check(health_pb2.HealthCheckRequest(service="nope"))
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_watch_sends_the_status_then_its_changes() -> None:
    ready = asyncio.Event()
    ready.set()

    async def is_ready() -> bool:
        return ready.is_set()

    health = Health(is_ready, ["svc"], watch_seconds=0.01)
    request = health_pb2.HealthCheckRequest(service="svc")
    watch = health.Watch(request, context=None)
    assert (await anext(watch)).status == SERVING
    ready.clear()
    assert (await anext(watch)).status == NOT_SERVING
    await watch.aclose()
    unknown = health.Watch(health_pb2.HealthCheckRequest(service="other"), context=None)
    statuses = [answer.status async for answer in unknown]
    assert statuses == [health_pb2.HealthCheckResponse.SERVICE_UNKNOWN]


async def test_reflection_lists_the_services_and_describes_the_protocol() -> None:
    async with served() as s:
        stub = reflection_pb2_grpc.ServerReflectionStub(s.channel)

        async def ask(**request: Any) -> Any:
            call = stub.ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(**request)])
            )
            (answer,) = [answer async for answer in call]  # one answer per request
            return answer

        listed = await ask(list_services="")
        names = {service.name for service in listed.list_services_response.service}
        assert names == {
            "inference.GRPCInferenceService",
            "grpc.health.v1.Health",
            "grpc.reflection.v1alpha.ServerReflection",
        }
        described = await ask(file_containing_symbol="inference.GRPCInferenceService")
        assert described.file_descriptor_response.file_descriptor_proto
