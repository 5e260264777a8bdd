"""The gateway's extensions from a fake catalog and fake statistics: what each version's counts
become, which versions are read, configuration from the descriptors, the repository index."""

import dataclasses

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from api.exceptions import ModelNotFound, ServiceUnavailable
from api.oip.catalog_extensions import Extensions
from api.oip.extensions import Duration, IndexEntry, VersionPolicy
from api.oip.tensors import TensorSpec
from api.oip.tests.fakes import FakeCatalog, FakeStats, model_a, model_b

COUNTS = {
    "success_count": 3,
    "success_ns": 9000,
    "fail_count": 1,
    "fail_ns": 500,
    "queue_count": 3,
    "queue_ns": 3000,
    "compute_infer_count": 3,
    "compute_infer_ns": 6000,
    "inference_count": 3,
    "execution_count": 2,
    "last_inference_ms": 1_700_000_000_000,
}


def _extensions(stats: FakeStats | None = None) -> tuple[Extensions, FakeCatalog, FakeStats]:
    dead = dataclasses.replace(model_b()[1], instances=0)  # model_b version 2: no live worker
    catalog = FakeCatalog([*model_a(), model_b()[0], dead])
    stats = stats or FakeStats({("model_b", "1"): COUNTS})
    return Extensions(catalog, stats), catalog, stats


@pytest.mark.asyncio
async def test_a_versions_counts_become_its_statistics() -> None:
    extensions, _, stats = _extensions()
    [found] = await extensions.statistics("model_b", "1")
    assert stats.reads == [[("model_b", "1")]]
    assert (found.name, found.version) == ("model_b", "1")
    assert found.last_inference_ms == 1_700_000_000_000
    assert (found.inference_count, found.execution_count) == (3, 2)
    assert found.success == Duration(3, 9000)
    assert found.fail == Duration(1, 500)
    assert found.queue == Duration(3, 3000)
    assert found.compute_infer == Duration(3, 6000)
    assert found.compute_input == found.compute_output == Duration(0, 0)


@pytest.mark.asyncio
async def test_every_version_of_a_model_and_of_every_model() -> None:
    extensions, _, stats = _extensions()
    of_b = await extensions.statistics("model_b")
    assert [(s.version, s.success.count) for s in of_b] == [("1", 3), ("2", 0)]
    everything = await extensions.statistics()
    assert [(s.name, s.version) for s in everything] == [
        ("model_a", "1"),
        ("model_b", "1"),
        ("model_b", "2"),
    ]
    assert stats.reads[-1] == [("model_a", "1"), ("model_b", "1"), ("model_b", "2")]


@pytest.mark.asyncio
async def test_unknown_models_and_versions_are_not_found() -> None:
    extensions, _, stats = _extensions()
    with pytest.raises(ModelNotFound):
        await extensions.statistics("nope")
    with pytest.raises(ModelNotFound):
        await extensions.statistics("model_b", "9")
    with pytest.raises(ModelNotFound):
        await extensions.configuration("model_a", "9")
    assert stats.reads == []


@pytest.mark.asyncio
async def test_an_unreachable_redis_is_a_service_unavailable_naming_it() -> None:
    extensions, _, _ = _extensions(FakeStats(error=RedisConnectionError("refused")))
    with pytest.raises(ServiceUnavailable) as raised:
        await extensions.statistics("model_b")
    assert raised.value.dependency == "redis"
    assert "ConnectionError" in raised.value.message


@pytest.mark.asyncio
async def test_configuration_from_the_descriptors_and_the_registered_batch_size() -> None:
    extensions, catalog, _ = _extensions()
    catalog.put(dataclasses.replace(model_b()[0], max_batch_size=16))
    config = await extensions.configuration("model_b", "1")
    assert (config.name, config.version, config.platform) == ("model_b", "1", "conveyor_protobuf")
    assert config.max_batch_size == 16
    assert list(config.inputs) == [TensorSpec("features", "FP64", (-1,))]
    assert [spec.name for spec in config.outputs] == [
        "label",
        "probabilities",
        "probabilities_keys",
    ]
    assert config.version_policy == VersionPolicy(all=True)
    default = await extensions.configuration("model_a")
    assert (default.version, default.max_batch_size) == ("1", 0)
    assert list(default.inputs) == [TensorSpec("data", "BYTES", (1,))]


@pytest.mark.asyncio
async def test_the_index_lists_every_registered_version_with_its_state() -> None:
    extensions, _, _ = _extensions()
    assert await extensions.repository_index() == [
        IndexEntry("model_a", "1", "READY"),
        IndexEntry("model_b", "1", "READY"),
        IndexEntry("model_b", "2", "UNAVAILABLE", "no live worker"),
    ]
    ready = await extensions.repository_index(ready_only=True)
    assert [(e.name, e.version) for e in ready] == [("model_a", "1"), ("model_b", "1")]
