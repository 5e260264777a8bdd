"""The gateway's model catalog over a registry served by httpx.MockTransport."""

import asyncio
import base64
import logging

import httpx
import pytest
from google.protobuf import json_format

from api.catalog import ModelCatalog
from api.exceptions import InvalidRequest, ModelNotFound, RegistryUnavailable
from conveyor.descriptors import describe_message, file_descriptor_set
from conveyor.registry_client import RegistryClient
from proto import model_a_pb2


def _detail(name: str, instances: int, features: list[str] | None = None) -> dict[str, object]:
    request, response = model_a_pb2.ModelARequest, model_a_pb2.ModelAResponse
    fds = base64.b64encode(file_descriptor_set(request.DESCRIPTOR, response.DESCRIPTOR)).decode()
    return {
        "name": name,
        "status": "alive" if instances else "dead",
        "version": "3",
        "instances": instances,
        "queue": f"conveyor.tasks.{name}.3",
        **({} if features is None else {"features": features}),
        "versions": [
            {
                "version": "3",
                "status": "alive" if instances else "dead",
                "instances": instances,
                "queue": f"conveyor.tasks.{name}.3",
            }
        ],
        "request": {**describe_message(request.DESCRIPTOR), "descriptor_set": fds},
        "response": {**describe_message(response.DESCRIPTOR), "descriptor_set": fds},
        "example_request": {"data": "example"},
    }


class FakeRegistry:
    """Serves ``GET /models/{name}`` from a dict and counts the calls.

    ``features`` are what the registry shows for a model's version (absent: a registry that
    predates features)."""

    def __init__(self) -> None:
        self.instances = {"echo": 1}
        self.features: dict[str, list[str]] = {}
        self.calls = 0
        self.down = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        if self.down:
            raise httpx.ConnectError("refused", request=request)
        if request.url.path == "/models":
            summaries = [_detail(name, n) for name, n in self.instances.items()]
            for summary in summaries:
                for key in ("request", "response", "example_request"):
                    del summary[key]
            return httpx.Response(200, json=summaries)
        name = request.url.path.rsplit("/", 1)[1]
        if name not in self.instances:
            return httpx.Response(404, json={"error": {"code": "model_not_found"}})
        detail = _detail(name, self.instances[name], self.features.get(name))
        return httpx.Response(200, json=detail)


def _catalog(registry: FakeRegistry, cache_seconds: float = 60.0) -> ModelCatalog:
    client = RegistryClient("http://registry.test", 1.0, transport=httpx.MockTransport(registry))
    return ModelCatalog(client, cache_seconds)


@pytest.mark.asyncio
async def test_builds_working_message_classes_from_the_descriptor_set() -> None:
    catalog = _catalog(FakeRegistry())
    info = await catalog.get("echo")
    await catalog.aclose()
    assert (info.version, info.versions, info.alive) == ("3", ("3",), True)
    message = json_format.ParseDict({"data": "hi"}, info.request_class())
    assert model_a_pb2.ModelARequest.FromString(message.SerializeToString()).data == "hi"


@pytest.mark.asyncio
async def test_live_models_come_from_the_cache_dead_ones_are_asked_again() -> None:
    registry = FakeRegistry()
    catalog = _catalog(registry)
    await catalog.get("echo")
    await catalog.get("echo")
    assert registry.calls == 1
    registry.instances["echo"] = 0
    catalog._cache.clear()
    assert not (await catalog.get("echo")).alive
    assert not (await catalog.get("echo")).alive
    assert registry.calls == 3  # a dead model is never served from the cache
    await catalog.aclose()


@pytest.mark.asyncio
async def test_unknown_and_unreachable() -> None:
    registry = FakeRegistry()
    catalog = _catalog(registry)
    with pytest.raises(ModelNotFound) as unknown:
        await catalog.get("nope")
    assert unknown.value.model == "nope"
    registry.down = True
    with pytest.raises(RegistryUnavailable) as down:
        await catalog.get("echo")
    assert down.value.model == "echo"
    await catalog.aclose()


@pytest.mark.asyncio
async def test_an_outage_is_logged_once_and_its_end_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="api.catalog")
    registry = FakeRegistry()
    catalog = _catalog(registry)
    assert [m.name for m in await catalog.list()] == ["echo"]
    registry.down = True
    for _ in range(5):
        with pytest.raises(RegistryUnavailable):
            await catalog.list()
    registry.down = False
    for _ in range(2):
        assert [m.name for m in await catalog.list()] == ["echo"]
    await catalog.aclose()
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2, messages
    assert messages[0].startswith("registry unreachable (") and "refused" in messages[0]
    assert messages[1] == "registry reachable again"


@pytest.mark.asyncio
async def test_the_last_known_model_is_served_while_the_registry_is_away() -> None:
    registry = FakeRegistry()
    catalog = _catalog(registry, cache_seconds=0.0)
    known = await catalog.get("echo")
    registry.down = True
    assert await catalog.get("echo") == known
    await catalog.aclose()


@pytest.mark.asyncio
async def test_malformed_names_never_reach_the_registry() -> None:
    registry = FakeRegistry()
    catalog = _catalog(registry)
    for name in ("bad\x00name", "a\r\nb", "model_a?x=1", "", "x" * 101):
        with pytest.raises(InvalidRequest):
            await catalog.get(name)
    with pytest.raises(InvalidRequest):
        await catalog.get("echo", "1/../2")
    assert registry.calls == 0
    await catalog.aclose()


@pytest.mark.asyncio
async def test_concurrent_requests_share_one_registry_call() -> None:
    registry = FakeRegistry()
    catalog = _catalog(registry)
    infos = await asyncio.gather(*(catalog.get("echo") for _ in range(20)))
    assert registry.calls == 1
    assert all(info is infos[0] for info in infos)
    with pytest.raises(ModelNotFound):
        await asyncio.gather(*(catalog.get("nope") for _ in range(5)))
    assert registry.calls == 2
    await catalog.aclose()


@pytest.mark.asyncio
async def test_an_expired_live_model_is_served_while_one_refresh_runs() -> None:
    registry = FakeRegistry()
    catalog = _catalog(registry, cache_seconds=0.0)
    first = await catalog.get("echo")
    registry.instances["echo"] = 2
    stale = await asyncio.gather(*(catalog.get("echo") for _ in range(10)))
    assert all(info is first for info in stale)  # no request waited for the registry
    await asyncio.sleep(0.05)  # the background refresh
    assert registry.calls == 2
    assert (await catalog.get("echo")).instances == 2
    await catalog.aclose()


@pytest.mark.asyncio
async def test_a_refresh_that_finds_the_model_gone_forgets_it() -> None:
    registry = FakeRegistry()
    catalog = _catalog(registry, cache_seconds=0.0)
    await catalog.get("echo")
    del registry.instances["echo"]
    await catalog.get("echo")  # served from the cache; the refresh learns it is gone
    await asyncio.sleep(0.05)
    with pytest.raises(ModelNotFound):
        await catalog.get("echo")
    await catalog.aclose()


@pytest.mark.asyncio
async def test_a_refresh_during_a_registry_outage_keeps_the_last_known_model() -> None:
    registry = FakeRegistry()
    catalog = _catalog(registry, cache_seconds=0.0)
    known = await catalog.get("echo")
    registry.down = True
    for _ in range(3):
        assert await catalog.get("echo") is known
        await asyncio.sleep(0.02)
    await catalog.aclose()


@pytest.mark.asyncio
async def test_a_version_packs_tasks_when_the_registry_says_every_instance_can() -> None:
    registry = FakeRegistry()
    registry.features = {"echo": ["task-batch", "other"], "old": [], "mixed": ["other"]}
    registry.instances.update({"old": 1, "mixed": 1, "legacy": 1})
    catalog = _catalog(registry)
    packing = await catalog.get("echo")
    assert (packing.features, packing.packs_tasks) == (frozenset({"task-batch", "other"}), True)
    assert not (await catalog.get("old")).packs_tasks
    assert (await catalog.get("mixed")).features == frozenset({"other"})
    assert not (await catalog.get("mixed")).packs_tasks
    legacy = await catalog.get("legacy")  # a registry without features: nothing is packed
    assert (legacy.features, legacy.packs_tasks) == (frozenset(), False)
    await catalog.aclose()


@pytest.mark.asyncio
async def test_a_refresh_learns_that_the_features_changed() -> None:
    registry = FakeRegistry()
    registry.features = {"echo": ["task-batch"]}
    catalog = _catalog(registry, cache_seconds=0.0)
    assert (await catalog.get("echo")).packs_tasks
    registry.features = {"echo": []}  # an older worker joined
    await catalog.get("echo")  # served from the cache; the refresh learns it
    await asyncio.sleep(0.05)
    assert not (await catalog.get("echo")).packs_tasks
    await catalog.aclose()
