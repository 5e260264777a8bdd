"""The protocol's extensions as gRPC responses: ``ModelStatistics``, ``ModelConfig`` and
``RepositoryIndex``, rendered from the values of ``api.oip.extensions`` (the REST routes
render the same values as JSON).

Conveyor's versions are strings; Triton's ``ModelVersionPolicy.Specific`` holds integers, so a
specific policy lists the versions that are whole numbers and leaves the others out.
"""

from collections.abc import Sequence
from typing import Final

from api.oip.datatypes import BYTES
from api.oip.extensions import (
    Duration,
    IndexEntry,
    ModelConfiguration,
    VersionPolicy,
    VersionStatistics,
)
from api.oip.tensors import TensorSpec
from proto.oip import grpc_service_pb2 as pb

__all__ = ["config_response", "data_type", "index_response", "statistics_response"]

_STRING: Final = "TYPE_STRING"
"""The configuration's name of the BYTES datatype (every other is ``TYPE_`` + its name)."""

_DATA_TYPES: Final = frozenset(pb.DataType.keys())


def statistics_response(stats: Sequence[VersionStatistics]) -> pb.ModelStatisticsResponse:
    """``ModelStatisticsResponse`` with one ``ModelStatistics`` per model version."""
    return pb.ModelStatisticsResponse(model_stats=[_statistics(s) for s in stats])


def _statistics(stats: VersionStatistics) -> pb.ModelStatistics:
    return pb.ModelStatistics(
        name=stats.name,
        version=stats.version,
        last_inference=stats.last_inference_ms,
        inference_count=stats.inference_count,
        execution_count=stats.execution_count,
        inference_stats=pb.InferStatistics(
            success=_duration(stats.success),
            fail=_duration(stats.fail),
            queue=_duration(stats.queue),
            compute_input=_duration(stats.compute_input),
            compute_infer=_duration(stats.compute_infer),
            compute_output=_duration(stats.compute_output),
        ),
    )


def _duration(duration: Duration) -> pb.StatisticDuration:
    return pb.StatisticDuration(count=duration.count, ns=duration.ns)


def data_type(datatype: str) -> str:
    """The name of the model configuration's ``DataType`` of a protocol datatype (``FP64`` ->
    ``TYPE_FP64``, ``BYTES`` -> ``TYPE_STRING``); ``TYPE_INVALID`` for an unknown one."""
    name = _STRING if datatype == BYTES else f"TYPE_{datatype}"
    return name if name in _DATA_TYPES else "TYPE_INVALID"


def config_response(config: ModelConfiguration) -> pb.ModelConfigResponse:
    """``ModelConfigResponse`` of a model version's configuration."""
    return pb.ModelConfigResponse(
        config=pb.ModelConfig(
            name=config.name,
            platform=config.platform,
            backend=config.backend,
            version_policy=_policy(config.version_policy),
            max_batch_size=config.max_batch_size,
            input=[_input(spec) for spec in config.inputs],
            output=[_output(spec) for spec in config.outputs],
        )
    )


def _input(spec: TensorSpec) -> pb.ModelInput:
    return pb.ModelInput(name=spec.name, data_type=data_type(spec.datatype), dims=spec.shape)


def _output(spec: TensorSpec) -> pb.ModelOutput:
    return pb.ModelOutput(name=spec.name, data_type=data_type(spec.datatype), dims=spec.shape)


def _policy(policy: VersionPolicy) -> pb.ModelVersionPolicy:
    if policy.latest is not None:
        return pb.ModelVersionPolicy(
            latest=pb.ModelVersionPolicy.Latest(num_versions=policy.latest)
        )
    if policy.all:
        return pb.ModelVersionPolicy(all=pb.ModelVersionPolicy.All())
    numbers = [int(v) for v in policy.specific if v.isdecimal()]
    return pb.ModelVersionPolicy(specific=pb.ModelVersionPolicy.Specific(versions=numbers))


def index_response(entries: Sequence[IndexEntry]) -> pb.RepositoryIndexResponse:
    """``RepositoryIndexResponse`` listing the entries in their order."""
    return pb.RepositoryIndexResponse(
        models=[
            pb.RepositoryIndexResponse.ModelIndex(
                name=e.name, version=e.version, state=e.state, reason=e.reason
            )
            for e in entries
        ]
    )
