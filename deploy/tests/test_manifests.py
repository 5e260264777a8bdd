"""The Kubernetes manifests: every kustomization renders, every resource validates against a
schema, pods are hardened, references resolve, and the services match the compose stack and the
wire protocol (so compose and Kubernetes cannot drift apart)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tools.k8s import checks
from tools.k8s.kustomize import render
from tools.k8s.stack import stack_services
from tools.k8s.validate import KUBERNETES_VERSION, custom_schemas, validate
from tools.stack.services import GRPC_PORT

K8S = Path(__file__).resolve().parent.parent / "k8s"
KUSTOMIZATIONS = sorted(
    str(path.parent.relative_to(K8S)) for path in K8S.glob("**/kustomization.yaml")
)
SECRET = "conveyor"
SECRET_ENV = {"AMQP_URL", "API_KEYS", "REGISTRY_KEY"}
"""Variables from the Secret: their values differ from compose by design (credentials)."""
K8S_ONLY_ENV = {
    # Set explicitly: Kubernetes' service links would set API_PORT/REGISTRY_PORT to
    # tcp://<ip>:<port> for the Services `api` and `registry` (they are also turned off).
    "api": {"API_PORT", "API_KEYS"},
    "registry": {"REGISTRY_PORT", "REGISTRY_KEY"},
    "model_a": {"REGISTRY_KEY"},
    "model_b": {"REGISTRY_KEY"},
    "model_c": {"REGISTRY_KEY"},
}
"""Variables the Deployments set beyond the compose stack's."""


def _secret_keys() -> dict[str, set[str]]:
    lines = (K8S / "secret.example.env").read_text().splitlines()
    keys = {line.split("=", 1)[0] for line in lines if line and not line.startswith("#")}
    return {SECRET: keys}


@pytest.fixture(scope="module")
def base() -> list[dict[str, Any]]:
    return render(K8S / "base")


def test_the_kustomizations_found() -> None:
    assert KUSTOMIZATIONS == ["base", "overlays/example", "overlays/scale-to-zero"]


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_every_resource_validates(kustomization: str) -> None:
    resources = render(K8S / kustomization)
    report = validate(resources, custom_schemas(K8S / "schemas"), KUBERNETES_VERSION)
    print(f"{kustomization}: {report.summary()}")
    assert report.errors == []
    assert report.total == len(resources) > 0


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_pods_are_hardened_and_references_resolve(kustomization: str) -> None:
    resources = render(K8S / kustomization)
    assert checks.check_hardening(resources) == []
    assert checks.check_references(resources, _secret_keys()) == []
    assert checks.check_queues(resources) == []


def test_the_secret_documents_exactly_what_the_pods_read(base: list[dict[str, Any]]) -> None:
    used = {
        env["valueFrom"]["secretKeyRef"]["key"]
        for workload in checks.workloads(base)
        for container in workload["spec"]["template"]["spec"]["containers"]
        for env in container.get("env", [])
        if "secretKeyRef" in env.get("valueFrom", {})
    }
    assert used == _secret_keys()[SECRET] == SECRET_ENV


def test_the_services_match_the_compose_stack(base: list[dict[str, Any]]) -> None:
    services = stack_services(Path(os.environ["CONVEYOR_COMPOSE_FILE"]))
    assert set(K8S_ONLY_ENV) == {name for name in services if name not in ("rabbitmq", "redis")}
    assert checks.check_stack(base, services, K8S_ONLY_ENV, SECRET_ENV) == []
    redis = [r for r in base if r["kind"] == "StatefulSet" and r["metadata"]["name"] == "redis"]
    (container,) = redis[0]["spec"]["template"]["spec"]["containers"]
    assert container["image"] == services["redis"].image
    assert {p["containerPort"] for p in container["ports"]} == set(services["redis"].ports)
    print(f"compose stack and manifests agree on {sorted(K8S_ONLY_ENV)} and redis")


def test_overlays_take_every_image_from_a_registry() -> None:
    for kustomization in KUSTOMIZATIONS:
        if not kustomization.startswith("overlays/"):
            continue
        for workload in checks.workloads(render(K8S / kustomization)):
            for container in workload["spec"]["template"]["spec"]["containers"]:
                image = container["image"]
                assert image.startswith("registry.example.com/"), (kustomization, image)
                assert not image.endswith(":dev"), (kustomization, image)


def test_only_model_a_may_scale_to_zero_and_only_in_its_overlay() -> None:
    def minimum(kustomization: str) -> dict[str, int]:
        resources = render(K8S / kustomization)
        scaled = [r for r in resources if r["kind"] == "ScaledObject"]
        return {r["metadata"]["name"]: r["spec"]["minReplicaCount"] for r in scaled}

    assert minimum("base") == {"model-a": 1, "model-b": 1, "model-c": 1}
    assert minimum("overlays/scale-to-zero") == {"model-a": 0, "model-b": 1, "model-c": 1}


@pytest.mark.skipif(shutil.which("sh") is None, reason="no POSIX shell to parse the scripts")
def test_redis_scripts_parse() -> None:
    for script in sorted((K8S / "base" / "redis").glob("*.sh")):
        subprocess.run(["sh", "-n", str(script)], check=True)


def test_the_gateway_exposes_grpc_and_is_ready_by_its_health_service(
    base: list[dict[str, Any]],
) -> None:
    (api,) = [r for r in base if r["kind"] == "Deployment" and r["metadata"]["name"] == "api"]
    (container,) = api["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["grpc"] == GRPC_PORT
    assert container["readinessProbe"]["grpc"] == {"port": GRPC_PORT}
    (service,) = [r for r in base if r["kind"] == "Service" and r["metadata"]["name"] == "api"]
    assert {"name": "grpc", "port": GRPC_PORT, "targetPort": "grpc"} in service["spec"]["ports"]
