"""Checks of rendered manifests beyond their schemas: pod hardening, references between
resources, agreement with the compose stack, and the queue each model scales on.

Each check returns a list of problems (empty = fine), one readable sentence each.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from conveyor.protocol import durable_queue, sync_queue
from tools.k8s.kustomize import resource_id
from tools.k8s.stack import BROKERS, StackService

__all__ = [
    "NONROOT_UID",
    "check_hardening",
    "check_queues",
    "check_references",
    "check_stack",
    "workloads",
]

NONROOT_UID = 65532
"""The user every Conveyor image runs as (tools/oci/defs.bzl)."""
MODEL_LABEL = "conveyor/model"
"""Pod label naming the model a worker Deployment serves."""
VERSION_LABEL = "conveyor/version"
"""Pod label naming the model version its image serves."""

Resource = dict[str, Any]
_WORKLOAD_KINDS = ("Deployment", "StatefulSet")


def _name(resource: Resource) -> str:
    return str(resource.get("metadata", {}).get("name", ""))


def _of_kind(resources: list[Resource], kind: str) -> Iterator[Resource]:
    return (r for r in resources if r["kind"] == kind)


def workloads(resources: list[Resource]) -> Iterator[Resource]:
    """The Deployments and StatefulSets."""
    return (r for r in resources if r["kind"] in _WORKLOAD_KINDS)


def _pod(workload: Resource) -> dict[str, Any]:
    return dict(workload["spec"]["template"]["spec"])


def _pod_labels(workload: Resource) -> dict[str, str]:
    return dict(workload["spec"]["template"].get("metadata", {}).get("labels", {}))


def _selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def check_hardening(resources: list[Resource]) -> list[str]:
    """Non-root 65532, read-only root, no privilege escalation, no capabilities, requests and a
    memory limit, liveness and readiness probes, ``/tmp`` on an emptyDir, no service links."""
    problems: list[str] = []
    for workload in workloads(resources):
        where = resource_id(workload)
        pod = _pod(workload)
        context = pod.get("securityContext", {})
        if context.get("runAsNonRoot") is not True or context.get("runAsUser") != NONROOT_UID:
            problems.append(f"{where}: pod must set runAsNonRoot and runAsUser {NONROOT_UID}")
        if pod.get("enableServiceLinks") is not False:
            problems.append(f"{where}: enableServiceLinks must be false (API_PORT=tcp://...)")
        if pod.get("automountServiceAccountToken") is not False:
            problems.append(f"{where}: automountServiceAccountToken must be false")
        empty_dirs = {v["name"] for v in pod.get("volumes", []) if "emptyDir" in v}
        for container in pod["containers"]:
            at = f"{where} container {container['name']}"
            security = container.get("securityContext", {})
            if security.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{at}: allowPrivilegeEscalation must be false")
            if security.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{at}: readOnlyRootFilesystem must be true")
            if security.get("capabilities", {}).get("drop") != ["ALL"]:
                problems.append(f"{at}: capabilities must drop ALL")
            resources_ = container.get("resources", {})
            requests = resources_.get("requests", {})
            if "cpu" not in requests or "memory" not in requests:
                problems.append(f"{at}: needs cpu and memory requests")
            if "memory" not in resources_.get("limits", {}):
                problems.append(f"{at}: needs a memory limit")
            for probe in ("livenessProbe", "readinessProbe"):
                if probe not in container:
                    problems.append(f"{at}: no {probe}")
            tmp = [m for m in container.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
            if not tmp or tmp[0]["name"] not in empty_dirs:
                problems.append(f"{at}: /tmp must be an emptyDir (the root is read-only)")
    return problems


def _container_ports(pod: Mapping[str, Any]) -> dict[str | int, int]:
    ports: dict[str | int, int] = {}
    for container in pod["containers"]:
        for port in container.get("ports", []):
            ports[port["containerPort"]] = port["containerPort"]
            if "name" in port:
                ports[port["name"]] = port["containerPort"]
    return ports


def _probe_ports(container: Mapping[str, Any]) -> Iterator[str | int]:
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        handler = container.get(probe, {})
        for kind in ("httpGet", "tcpSocket", "grpc"):
            if kind in handler:
                yield handler[kind]["port"]


def _service_problems(resources: list[Resource]) -> list[str]:
    problems: list[str] = []
    loads = list(workloads(resources))
    for service in _of_kind(resources, "Service"):
        selector = service["spec"].get("selector", {})
        pods = [w for w in loads if _selects(selector, _pod_labels(w))]
        if not pods:
            problems.append(f"{resource_id(service)}: selects no pod template")
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            problems += [
                f"{resource_id(service)}: {resource_id(w)} has no port {target}"
                for w in pods
                if target not in _container_ports(_pod(w))
            ]
    for budget in _of_kind(resources, "PodDisruptionBudget"):
        selector = budget["spec"]["selector"]["matchLabels"]
        if not any(_selects(selector, _pod_labels(w)) for w in loads):
            problems.append(f"{resource_id(budget)}: selects no pod template")
    return problems


def _scaling_problems(resources: list[Resource]) -> list[str]:
    problems: list[str] = []
    names = {(r["kind"], _name(r)) for r in resources}
    for hpa in _of_kind(resources, "HorizontalPodAutoscaler"):
        target = hpa["spec"]["scaleTargetRef"]
        if (target["kind"], target["name"]) not in names:
            problems.append(f"{resource_id(hpa)}: no {target['kind']} {target['name']}")
    deployments = {_name(d): d for d in _of_kind(resources, "Deployment")}
    for scaled in _of_kind(resources, "ScaledObject"):
        target = deployments.get(scaled["spec"]["scaleTargetRef"]["name"])
        if target is None:
            problems.append(f"{resource_id(scaled)}: its scaleTargetRef is no Deployment")
            continue
        env = {e["name"] for c in _pod(target)["containers"] for e in c.get("env", [])}
        for trigger in scaled["spec"]["triggers"]:
            from_env = trigger["metadata"].get("hostFromEnv")
            if from_env and from_env not in env:
                problems.append(f"{resource_id(scaled)}: hostFromEnv {from_env} is not set")
    return problems


def _env_problems(
    where: str,
    container: Mapping[str, Any],
    configmaps: Mapping[str, Any],
    secrets: Mapping[str, set[str]],
) -> list[str]:
    problems: list[str] = []
    for env in container.get("env", []):
        source = env.get("valueFrom", {})
        if "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            if ref["key"] not in configmaps.get(ref["name"], {}):
                problems.append(
                    f"{where}: {env['name']}: ConfigMap {ref['name']} lacks {ref['key']}"
                )
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            if ref["key"] not in secrets.get(ref["name"], set()):
                problems.append(f"{where}: {env['name']}: {ref['name']}/{ref['key']} undocumented")
    return problems


def _workload_problems(resources: list[Resource], secrets: Mapping[str, set[str]]) -> list[str]:
    problems: list[str] = []
    services = {_name(r) for r in _of_kind(resources, "Service")}
    configmaps = {_name(r): r.get("data", {}) for r in _of_kind(resources, "ConfigMap")}
    for workload in workloads(resources):
        where = resource_id(workload)
        pod = _pod(workload)
        ports = _container_ports(pod)
        for volume in pod.get("volumes", []):
            if "configMap" in volume and volume["configMap"]["name"] not in configmaps:
                problems.append(f"{where}: volume {volume['name']}: no such ConfigMap")
        if workload["kind"] == "StatefulSet" and workload["spec"]["serviceName"] not in services:
            problems.append(f"{where}: no Service {workload['spec']['serviceName']}")
        for container in pod["containers"]:
            problems += [
                f"{where}: a probe uses port {port}, not a container port"
                for port in _probe_ports(container)
                if port not in ports
            ]
            problems += _env_problems(where, container, configmaps, secrets)
    return problems


def check_references(resources: list[Resource], secret_keys: Mapping[str, set[str]]) -> list[str]:
    """Selectors select, target ports and probe ports exist, scale targets exist, ConfigMap keys
    exist, and Secrets are the documented ones with documented keys (``secret_keys``)."""
    return (
        _service_problems(resources)
        + _scaling_problems(resources)
        + _workload_problems(resources, secret_keys)
    )


def _env(
    container: Mapping[str, Any], configmaps: Mapping[str, Mapping[str, str]]
) -> dict[str, str | None]:
    """Env names with their values; None for values from Secrets."""
    values: dict[str, str | None] = {}
    for env in container.get("env", []):
        ref = env.get("valueFrom", {}).get("configMapKeyRef")
        if ref is not None:
            values[env["name"]] = configmaps.get(ref["name"], {}).get(ref["key"])
        else:
            values[env["name"]] = env.get("value")
    return values


def _check_health(at: str, container: Mapping[str, Any], service: StackService) -> list[str]:
    http = service.http_health
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", []) if "name" in p}
    if http is not None:
        probe = container.get("livenessProbe", {}).get("httpGet")
        if probe is None:
            return [f"{at}: compose checks GET {http[1]}; the liveness probe is not an httpGet"]
        port = ports.get(probe["port"], probe["port"])
        if (port, probe["path"]) != http:
            return [
                f"{at}: liveness GETs {probe['path']} on {port}, compose {http[1]} on {http[0]}"
            ]
        return []
    command = tuple(container.get("readinessProbe", {}).get("exec", {}).get("command", []))
    if command != service.healthcheck:
        return [f"{at}: readiness command differs from the compose healthcheck"]
    return []


def check_stack(
    resources: list[Resource],
    services: Mapping[str, StackService],
    k8s_only_env: Mapping[str, set[str]],
    secret_env: set[str],
) -> list[str]:
    """Each non-broker service of the stack is a Deployment (``model_a`` -> ``model-a``) whose
    container has the same image, container ports and health check, the stack's environment
    variable names plus exactly ``k8s_only_env[name]``, and the stack's values except for
    ``secret_env``; and no Deployment is missing from the stack."""
    problems: list[str] = []
    configmaps = {_name(r): r.get("data", {}) for r in _of_kind(resources, "ConfigMap")}
    deployments = {_name(r): r for r in _of_kind(resources, "Deployment")}
    apps = {name: s for name, s in services.items() if name not in BROKERS}
    expected = {name.replace("_", "-") for name in apps}
    for unknown in sorted(set(deployments) - expected):
        problems.append(f"Deployment {unknown} is not a service of the compose stack")
    for name, service in sorted(apps.items()):
        deployment = deployments.get(name.replace("_", "-"))
        if deployment is None:
            problems.append(f"service {name}: no Deployment {name.replace('_', '-')}")
            continue
        (container,) = _pod(deployment)["containers"]
        at = f"{resource_id(deployment)} ({name})"
        if container["image"] != service.image:
            problems.append(f"{at}: image {container['image']}, compose {service.image}")
        ports = {p["containerPort"] for p in container.get("ports", [])}
        if ports != set(service.ports):
            problems.append(
                f"{at}: container ports {sorted(ports)}, compose {sorted(service.ports)}"
            )
        env = _env(container, configmaps)
        wanted = set(service.env) | k8s_only_env.get(name, set())
        if set(env) != wanted:
            missing, extra = sorted(wanted - set(env)), sorted(set(env) - wanted)
            problems.append(f"{at}: environment lacks {missing}, has unexpected {extra}")
        for key, value in sorted(service.env.items()):
            if key in env and key not in secret_env and env[key] != value:
                problems.append(f"{at}: {key}={env[key]!r}, compose {value!r}")
        problems += _check_health(at, container, service)
    return problems


def check_queues(resources: list[Resource]) -> list[str]:
    """Every worker Deployment has one ScaledObject, whose rabbitmq triggers read exactly the
    queues of its model version (conveyor.protocol: durable, durable high, sync)."""
    problems: list[str] = []
    scaled = list(_of_kind(resources, "ScaledObject"))
    for deployment in _of_kind(resources, "Deployment"):
        labels = _pod_labels(deployment)
        model, version = labels.get(MODEL_LABEL), labels.get(VERSION_LABEL)
        if model is None:
            continue
        if version is None:
            problems.append(f"{resource_id(deployment)}: no {VERSION_LABEL} label")
            continue
        mine = [s for s in scaled if s["spec"]["scaleTargetRef"]["name"] == _name(deployment)]
        if len(mine) != 1:
            problems.append(f"{resource_id(deployment)}: {len(mine)} ScaledObjects, want 1")
            continue
        wanted = {
            durable_queue(model, version),
            durable_queue(model, version, high=True),
            sync_queue(model, version),
        }
        queues = [t["metadata"].get("queueName") for t in mine[0]["spec"]["triggers"]]
        if sorted(queues) != sorted(wanted):
            problems.append(f"{resource_id(mine[0])}: queues {queues}, protocol {sorted(wanted)}")
    return problems
