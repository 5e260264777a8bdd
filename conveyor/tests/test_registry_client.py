"""The registry client against an in-memory registry (httpx.MockTransport): typed answers,
escaped names, and every failure as a RegistryClientError."""

import json

import httpx
import pytest
from pydantic import ValidationError

from conveyor.errors import ModelNotRegistered, RegistryRefused, RegistryUnavailable
from conveyor.registry_api import Registration
from conveyor.registry_client import RegistryClient

SUMMARY = {
    "name": "m",
    "status": "alive",
    "version": "1",
    "instances": 2,
    "queue": "conveyor.tasks.m.1",
    "versions": [
        {"version": "1", "status": "alive", "instances": 2, "queue": "conveyor.tasks.m.1"}
    ],
}


def _registration() -> Registration:
    return Registration(
        version="1",
        queue="conveyor.model.m",
        request_type="a.Req",
        response_type="a.Resp",
        descriptor_set="AAAA",
    )


def _client(handler: httpx.MockTransport) -> RegistryClient:
    return RegistryClient("http://registry.test", timeout=1.0, transport=handler)


@pytest.mark.asyncio
async def test_register_sends_the_registration_and_reads_the_ack() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        ack = {"model": "m", "instance_id": "i1", "liveness_window": 5.0}
        return httpx.Response(201, json=ack)

    client = _client(httpx.MockTransport(handler))
    ack = await client.register("m", "i1", _registration())
    await client.aclose()
    assert ack.liveness_window == 5.0
    assert (seen[0].method, seen[0].url.path) == ("POST", "/models/m/instances/i1")
    assert json.loads(seen[0].content)["request_type"] == "a.Req"
    assert json.loads(seen[0].content)["features"] == []


@pytest.mark.asyncio
async def test_features_round_trip() -> None:
    bodies: list[dict[str, object]] = []
    version = {"version": "1", "status": "alive", "instances": 2, "queue": "conveyor.tasks.m.1"}
    summary = {**SUMMARY, "features": ["task-batch"]}
    summary["versions"] = [{**version, "features": ["task-batch"]}]

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            bodies.append(json.loads(request.content))
            ack = {"model": "m", "instance_id": "i1", "liveness_window": 5.0}
            return httpx.Response(201, json=ack)
        return httpx.Response(200, json=[summary])

    client = _client(httpx.MockTransport(handler))
    registration = _registration().model_copy(update={"features": ["task-batch"]})
    await client.register("m", "i1", registration)
    listed = await client.list_models()
    await client.aclose()
    assert Registration.model_validate(bodies[0]) == registration
    assert (listed[0].features, listed[0].versions[0].features) == (["task-batch"], ["task-batch"])


def test_features_are_checked_and_default_to_none() -> None:
    assert _registration().features == []
    for features in (["Task"], [""], ["a" * 65], ["x"] * 33):
        with pytest.raises(ValidationError):
            Registration.model_validate({**_registration().model_dump(), "features": features})


@pytest.mark.asyncio
async def test_names_are_escaped_into_one_path_segment() -> None:
    paths: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.raw_path.decode())
        return httpx.Response(404, json={"error": {"code": "model_not_found", "message": "no"}})

    client = _client(httpx.MockTransport(handler))
    for name in ("model_a?x=1", "model_a#x", "../healthz", "a/b", "a\r\nb"):
        with pytest.raises(ModelNotRegistered):
            await client.get_model(name)
    await client.aclose()
    assert paths == [
        "/models/model_a%3Fx%3D1",
        "/models/model_a%23x",
        "/models/..%2Fhealthz",
        "/models/a%2Fb",
        "/models/a%0D%0Ab",
    ]


@pytest.mark.asyncio
async def test_list_is_typed() -> None:
    client = _client(httpx.MockTransport(lambda request: httpx.Response(200, json=[SUMMARY])))
    listed = await client.list_models()
    await client.aclose()
    assert listed[0].instances == 2
    assert listed[0].status == "alive"


@pytest.mark.asyncio
async def test_heartbeat_404_means_register_again() -> None:
    client = _client(httpx.MockTransport(lambda request: httpx.Response(404, json={})))
    assert await client.heartbeat("m", "i1") is False
    await client.deregister("m", "i1")  # unknown instance: nothing to do, no error
    await client.aclose()


@pytest.mark.asyncio
async def test_failures_are_registry_client_errors() -> None:
    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    client = _client(httpx.MockTransport(unreachable))
    with pytest.raises(RegistryUnavailable, match="connection refused"):
        await client.list_models()
    assert await client.healthy() is False
    await client.aclose()

    client = _client(httpx.MockTransport(lambda request: httpx.Response(503, text="down")))
    with pytest.raises(RegistryUnavailable, match="503"):
        await client.get_model("m")
    await client.aclose()

    client = _client(httpx.MockTransport(lambda request: httpx.Response(422, text="bad")))
    with pytest.raises(RegistryRefused) as refused:
        await client.register("m", "i1", _registration())
    assert refused.value.status == 422
    await client.aclose()

    client = _client(httpx.MockTransport(lambda request: httpx.Response(200, json={"x": 1})))
    with pytest.raises(RegistryUnavailable, match="unreadable ModelDetail"):
        await client.get_model("m")
    await client.aclose()
