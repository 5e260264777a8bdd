"""The scenarios ``python -m load_testing`` knows, as plain data (no Locust import here)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["DEFAULT_SCENARIO", "SCENARIOS", "V2_READY_PATH", "Scenario"]

V2_READY_PATH: Final = "/v2/health/ready"
"""Readiness path of the KServe-style v2 inference protocol; 404 means "not implemented"."""


@dataclass(frozen=True)
class Scenario:
    """A named run: which Locust user classes, and whether the step load shape drives it."""

    name: str
    user_classes: tuple[str, ...]
    description: str
    step_shape: bool = False
    needs_v2: bool = False


SCENARIOS: Final[dict[str, Scenario]] = {
    s.name: s
    for s in (
        Scenario("baseline", ("HealthUser",), "GET /healthz: the gateway alone, no queue hop"),
        Scenario("model_a", ("ModelAUser",), "sync predict on model_a (short text)"),
        Scenario("model_b", ("ModelBUser",), "sync predict on model_b (numeric features)"),
        Scenario("async", ("AsyncUser",), "async submit to model_a/model_b, poll /tasks/{id}"),
        Scenario("sync", ("ModelAUser", "ModelBUser"), "sync predict, model_a and model_b 1:1"),
        Scenario(
            "mixed",
            ("ModelAUser", "ModelBUser", "AsyncUser"),
            "weighted mix: 3 model_a : 3 model_b : 1 async",
        ),
        Scenario(
            "step",
            ("ModelAUser", "ModelBUser", "AsyncUser"),
            "the mixed users under a step load that grows until throughput saturates",
            step_shape=True,
        ),
        Scenario(
            "v2_infer",
            ("V2InferUser",),
            "v2 /v2/models/{model}/infer on model_b; skipped while /v2/health/ready is 404",
            needs_v2=True,
        ),
    )
}

DEFAULT_SCENARIO: Final = "mixed"
