"""The protocol's extensions as plain values: statistics, model configuration, repository index.

This module is the seam between what the gateway knows about its models and the two front ends
that render it: the REST routes under ``/v2`` (JSON, in Triton's shapes) and the gRPC service
(``inference.GRPCInferenceService``'s ``ModelStatistics``, ``ModelConfig`` and
``RepositoryIndex``). Neither front end computes anything; both render these values.

``app.state.extensions`` holds the gateway's ``Extensions`` (built in its lifespan).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from api.oip.tensors import TensorSpec


@dataclass(frozen=True)
class Duration:
    """A number of events and the nanoseconds they took together (Triton's
    ``StatisticDuration``)."""

    count: int = 0
    ns: int = 0


@dataclass(frozen=True)
class VersionStatistics:
    """What the workers reported for one model version since its statistics began.

    ``success`` and ``fail`` count requests and their total time (queue plus compute);
    ``queue`` is from publish to a worker starting the model; ``compute_infer`` is the
    model's own time. ``compute_input`` and ``compute_output`` are the decode and encode
    around it (zero counts where the workers do not measure them separately).
    ``last_inference_ms`` is Unix milliseconds of the last completed request, 0 if none.
    """

    name: str
    version: str
    last_inference_ms: int
    inference_count: int
    execution_count: int
    success: Duration
    fail: Duration
    queue: Duration
    compute_input: Duration
    compute_infer: Duration
    compute_output: Duration


@dataclass(frozen=True)
class VersionPolicy:
    """Which versions the server serves: the ``latest`` n, ``all``, or ``specific`` ones.
    Exactly one of the three is set."""

    latest: int | None = None
    all: bool = False
    specific: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelConfiguration:
    """A model version's configuration, as far as Conveyor has one (Triton's ``ModelConfig``
    subset: name, platform, backend, max batch size, inputs, outputs, version policy)."""

    name: str
    version: str
    platform: str
    backend: str
    max_batch_size: int
    inputs: Sequence[TensorSpec]
    outputs: Sequence[TensorSpec]
    version_policy: VersionPolicy


@dataclass(frozen=True)
class IndexEntry:
    """One registered model version and its state: ``READY`` (a live worker) or
    ``UNAVAILABLE`` (registered, none alive), with the reason when not ready."""

    name: str
    version: str
    state: str
    reason: str = ""


class ExtensionsView(Protocol):
    """What both front ends ask of the gateway for the protocol's extensions.

    Unknown models and versions raise ``ModelNotFound``; an unreachable registry raises
    ``RegistryUnavailable``, an unreachable Redis (the statistics) ``ServiceUnavailable`` with
    ``dependency="redis"``, as everywhere in the gateway (``api.exceptions``).
    """

    async def statistics(
        self, name: str | None = None, version: str | None = None
    ) -> list[VersionStatistics]:
        """Every version of every model when ``name`` is None; of one model (or one version)
        otherwise."""
        ...

    async def configuration(self, name: str, version: str | None = None) -> ModelConfiguration:
        """The configuration of a model version (the default version when None)."""
        ...

    async def repository_index(self, ready_only: bool = False) -> list[IndexEntry]:
        """Every registered model version, sorted by name then version; only the ready ones
        when ``ready_only``."""
        ...
