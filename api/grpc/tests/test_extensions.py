"""The protocol's extensions over gRPC: the gateway's ``ExtensionsView`` values rendered into
``ModelStatistics``, ``ModelConfig`` and ``RepositoryIndex`` (a small fake view)."""

from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest

from api.exceptions import ModelNotFound
from api.grpc.extensions import data_type
from api.grpc.tests.served import served
from api.oip.extensions import (
    Duration,
    IndexEntry,
    ModelConfiguration,
    VersionPolicy,
    VersionStatistics,
)
from api.oip.tensors import TensorSpec
from proto.oip import grpc_service_pb2 as pb

pytestmark = pytest.mark.asyncio


def _stats(name: str, version: str) -> VersionStatistics:
    return VersionStatistics(
        name=name,
        version=version,
        last_inference_ms=1_700_000_000_123,
        inference_count=7,
        execution_count=3,
        success=Duration(7, 70_000),
        fail=Duration(1, 9_000),
        queue=Duration(8, 800),
        compute_input=Duration(),
        compute_infer=Duration(7, 7_000),
        compute_output=Duration(),
    )


@dataclass
class FakeExtensions:
    """An ``ExtensionsView`` of fixed values; records what it was asked."""

    policy: VersionPolicy = field(default_factory=lambda: VersionPolicy(latest=1))
    asked: list[tuple[Any, ...]] = field(default_factory=list)

    async def statistics(
        self, name: str | None = None, version: str | None = None
    ) -> list[VersionStatistics]:
        self.asked.append(("statistics", name, version))
        if name == "nope":
            raise ModelNotFound("unknown model 'nope'", model=name)
        return [_stats("model_a", "1"), _stats("model_b", "2")]

    async def configuration(self, name: str, version: str | None = None) -> ModelConfiguration:
        self.asked.append(("configuration", name, version))
        if name == "nope":
            raise ModelNotFound("unknown model 'nope'", model=name)
        return ModelConfiguration(
            name=name,
            version=version or "2",
            platform="conveyor_protobuf",
            backend="conveyor",
            max_batch_size=32,
            inputs=[TensorSpec("features", "FP64", (-1,))],
            outputs=[TensorSpec("label", "BYTES", (1,)), TensorSpec("n", "INT32", (1,))],
            version_policy=self.policy,
        )

    async def repository_index(self, ready_only: bool = False) -> list[IndexEntry]:
        self.asked.append(("index", ready_only))
        entries = [
            IndexEntry("model_a", "1", "READY"),
            IndexEntry("model_b", "1", "UNAVAILABLE", "no live worker"),
        ]
        return [e for e in entries if e.state == "READY" or not ready_only]


async def test_statistics_render_every_duration() -> None:
    view = FakeExtensions()
    async with served(extensions=view) as s:
        response = await s.stub.ModelStatistics(pb.ModelStatisticsRequest(name="model_a"))
        first = response.model_stats[0]
        assert (first.name, first.version, first.last_inference) == (
            "model_a", "1", 1_700_000_000_123
        )  # fmt: skip
        assert (first.inference_count, first.execution_count) == (7, 3)
        stats = first.inference_stats
        assert (stats.success.count, stats.success.ns) == (7, 70_000)
        assert (stats.fail.count, stats.fail.ns) == (1, 9_000)
        assert (stats.queue.count, stats.compute_infer.ns) == (8, 7_000)
        assert stats.compute_input.count == 0
        assert [m.name for m in response.model_stats] == ["model_a", "model_b"]
        await s.stub.ModelStatistics(pb.ModelStatisticsRequest())
        await s.stub.ModelStatistics(pb.ModelStatisticsRequest(name="model_b", version="2"))
        assert view.asked == [
            ("statistics", "model_a", None),
            ("statistics", None, None),
            ("statistics", "model_b", "2"),
        ]


async def test_configuration_renders_tensors_batch_size_and_policy() -> None:
    view = FakeExtensions()
    async with served(extensions=view) as s:
        config = (await s.stub.ModelConfig(pb.ModelConfigRequest(name="model_b"))).config
        assert (config.name, config.platform, config.backend, config.max_batch_size) == (
            "model_b", "conveyor_protobuf", "conveyor", 32
        )  # fmt: skip
        assert [(i.name, i.data_type, list(i.dims)) for i in config.input] == [
            ("features", pb.TYPE_FP64, [-1])
        ]
        assert [(o.name, o.data_type, list(o.dims)) for o in config.output] == [
            ("label", pb.TYPE_STRING, [1]),
            ("n", pb.TYPE_INT32, [1]),
        ]
        assert config.version_policy.latest.num_versions == 1
        await s.stub.ModelConfig(pb.ModelConfigRequest(name="model_b", version="1"))
        assert view.asked[-1] == ("configuration", "model_b", "1")
        error = await _error(s.stub.ModelConfig(pb.ModelConfigRequest(name="nope")))
        assert error.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    ("policy", "choice", "check"),
    [
        (VersionPolicy(all=True), "all", lambda p: True),
        (VersionPolicy(latest=3), "latest", lambda p: p.latest.num_versions == 3),
        (
            VersionPolicy(specific=("1", "beta", "10")),
            "specific",
            lambda p: list(p.specific.versions) == [1, 10],  # whole numbers only
        ),
    ],
)
async def test_each_version_policy(policy: VersionPolicy, choice: str, check: Any) -> None:
    async with served(extensions=FakeExtensions(policy)) as s:
        config = (await s.stub.ModelConfig(pb.ModelConfigRequest(name="m"))).config
        assert config.version_policy.WhichOneof("policy_choice") == choice
        assert check(config.version_policy)


async def test_the_repository_index_and_its_ready_filter() -> None:
    view = FakeExtensions()
    async with served(extensions=view) as s:
        every = await s.stub.RepositoryIndex(pb.RepositoryIndexRequest())
        assert [(m.name, m.version, m.state, m.reason) for m in every.models] == [
            ("model_a", "1", "READY", ""),
            ("model_b", "1", "UNAVAILABLE", "no live worker"),
        ]
        ready = await s.stub.RepositoryIndex(pb.RepositoryIndexRequest(ready=True))
        assert [m.name for m in ready.models] == ["model_a"]


async def test_without_extensions_the_calls_are_unimplemented() -> None:
    async with served(extensions=None) as s:
        for call in (
            s.stub.ModelStatistics(pb.ModelStatisticsRequest()),
            s.stub.ModelConfig(pb.ModelConfigRequest(name="model_a")),
            s.stub.RepositoryIndex(pb.RepositoryIndexRequest()),
        ):
            error = await _error(call)
            assert error.code() == grpc.StatusCode.UNIMPLEMENTED
            assert "extension is not available" in error.details()


def test_datatypes_of_the_model_configuration() -> None:
    assert data_type("FP64") == "TYPE_FP64"
    assert data_type("BYTES") == "TYPE_STRING"
    assert data_type("UINT8") == "TYPE_UINT8"
    assert data_type("NOPE") == "TYPE_INVALID"


async def _error(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value
