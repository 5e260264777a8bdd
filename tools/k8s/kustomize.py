"""The part of kustomize that Conveyor's manifests use, so they render and validate offline.

``render(directory)`` reads ``kustomization.yaml`` and returns the resources ``kustomize build``
would, for these fields only (anything else is an error, never silently ignored):

- ``resources``: YAML files and directories holding a kustomization (rendered first);
- ``configMapGenerator``: ``name`` with ``literals``, ``files`` and ``envs``; the name gets a
  content hash suffix (kustomize's encoding) and references from pod templates follow it;
- ``patches``: strategic-merge patches (inline ``patch`` or ``path``) with a ``target`` or the
  patch's own kind and name; maps merge, lists of named items merge by ``name``, other lists
  are replaced (``$patch`` directives and JSON 6902 patches are not supported);
- ``namespace``, ``labels`` (``pairs``, ``includeTemplates``; ``includeSelectors`` only false),
  ``images`` (``name``, ``newName``, ``newTag``, ``digest``), ``replicas`` (``name``, ``count``).

``kubectl apply -k`` runs the real kustomize; this exists for the tests and for
``bazel run //tools/k8s:render``.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

__all__ = ["RenderError", "configmap_hash", "dump", "render", "resource_id"]

Resource = dict[str, Any]

_KNOWN_FIELDS = {
    "apiVersion",
    "kind",
    "resources",
    "configMapGenerator",
    "patches",
    "namespace",
    "labels",
    "images",
    "replicas",
}
_CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "PersistentVolume",
    "StorageClass",
    "PriorityClass",
}
_POD_TEMPLATE_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}
_REPLICA_KINDS = {"Deployment", "StatefulSet", "ReplicaSet"}
_HASH_LETTERS = str.maketrans({"0": "g", "1": "h", "3": "k", "a": "m", "e": "t"})


class RenderError(Exception):
    """The kustomization is malformed or uses a feature this renderer does not implement."""


def resource_id(resource: Resource) -> str:
    """``Kind/namespace/name`` (namespace omitted when unset), for messages."""
    metadata = resource.get("metadata", {})
    namespace = metadata.get("namespace")
    parts = [resource.get("kind", "?"), *([namespace] if namespace else []), metadata.get("name")]
    return "/".join(str(p) for p in parts)


def _load_yaml(path: Path) -> list[Resource]:
    try:
        documents = list(yaml.safe_load_all(path.read_text()))
    except (OSError, yaml.YAMLError) as e:
        raise RenderError(f"{path}: {e}") from e
    resources = [d for d in documents if d is not None]
    for resource in resources:
        if not isinstance(resource, dict) or "kind" not in resource or "apiVersion" not in resource:
            raise RenderError(f"{path}: a document without apiVersion and kind")
    return resources


def configmap_hash(name: str, data: dict[str, str]) -> str:
    """kustomize's name suffix of a generated ConfigMap (``encodeConfigMap`` + ``encodeHash``)."""
    encoded = json.dumps(
        {"data": data, "kind": "ConfigMap", "name": name}, sort_keys=True, separators=(",", ":")
    )
    # Go's encoding/json escapes these; json.dumps does not.
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        encoded = encoded.replace(char, escape)
    return hashlib.sha256(encoded.encode()).hexdigest()[:10].translate(_HASH_LETTERS)


def _env_file(path: Path) -> dict[str, str]:
    data: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise RenderError(f"{path}: {line!r} is not KEY=VALUE")
        data[key.strip()] = value
    return data


def _generate_configmap(spec: dict[str, Any], base: Path) -> tuple[Resource, str]:
    unknown = set(spec) - {"name", "literals", "files", "envs"}
    if unknown:
        raise RenderError(f"configMapGenerator {spec.get('name')}: unsupported {sorted(unknown)}")
    name = spec["name"]
    data: dict[str, str] = {}
    for literal in spec.get("literals", []):
        key, sep, value = str(literal).partition("=")
        if not sep:
            raise RenderError(f"configMapGenerator {name}: {literal!r} is not KEY=VALUE")
        data[key] = value
    for entry in spec.get("files", []):
        key, sep, file = str(entry).partition("=")
        path = base / (file if sep else key)
        data[key if sep else path.name] = path.read_text()
    for env in spec.get("envs", []):
        data.update(_env_file(base / env))
    hashed = f"{name}-{configmap_hash(name, data)}"
    resource = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": hashed}, "data": data}
    return resource, name


def _pod_specs(resource: Resource) -> Iterator[dict[str, Any]]:
    kind = resource.get("kind")
    spec = resource.get("spec", {})
    if kind in _POD_TEMPLATE_KINDS:
        yield spec.get("template", {}).get("spec", {})
    elif kind == "CronJob":
        yield spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec", {})
    elif kind == "Pod":
        yield spec


def _containers(pod: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from pod.get("initContainers", [])
    yield from pod.get("containers", [])


def _rename_configmaps(resources: list[Resource], names: dict[str, str]) -> None:
    def rename(holder: dict[str, Any] | None, key: str = "name") -> None:
        if holder is not None and holder.get(key) in names:
            holder[key] = names[holder[key]]

    for resource in resources:
        for pod in _pod_specs(resource):
            for container in _containers(pod):
                for env in container.get("env", []):
                    rename(env.get("valueFrom", {}).get("configMapKeyRef"))
                for source in container.get("envFrom", []):
                    rename(source.get("configMapRef"))
            for volume in pod.get("volumes", []):
                rename(volume.get("configMap"))
                for source in volume.get("projected", {}).get("sources", []):
                    rename(source.get("configMap"))


def _merge(target: Any, patch: Any) -> Any:
    if isinstance(target, dict) and isinstance(patch, dict):
        for key, value in patch.items():
            if isinstance(key, str) and key.startswith("$"):
                raise RenderError(f"patch directive {key} is not supported")
            if value is None:
                target.pop(key, None)
            else:
                target[key] = _merge(target.get(key), value)
        return target
    named = isinstance(target, list) and isinstance(patch, list)
    if named and all(isinstance(i, dict) and "name" in i for i in [*target, *patch]):
        by_name = {item["name"]: item for item in target}
        for item in patch:
            if item["name"] in by_name:
                _merge(by_name[item["name"]], item)
            else:
                target.append(item)
        return target
    return copy.deepcopy(patch)


def _matches(resource: Resource, target: dict[str, Any]) -> bool:
    unknown = set(target) - {"group", "version", "kind", "name"}
    if unknown:
        raise RenderError(f"patch target: unsupported {sorted(unknown)}")
    group, _, version = resource["apiVersion"].rpartition("/")
    wanted = {
        "group": group,
        "version": version,
        "kind": resource["kind"],
        "name": resource.get("metadata", {}).get("name"),
    }
    return all(wanted[key] == value for key, value in target.items())


def _apply_patches(resources: list[Resource], patches: list[dict[str, Any]], base: Path) -> None:
    for entry in patches:
        unknown = set(entry) - {"patch", "path", "target"}
        if unknown:
            raise RenderError(f"patches: unsupported {sorted(unknown)}")
        text = entry["patch"] if "patch" in entry else (base / entry["path"]).read_text()
        patch = yaml.safe_load(text)
        if not isinstance(patch, dict):
            raise RenderError("patches: only strategic-merge patches (a YAML map) are supported")
        target = entry.get("target") or {
            "kind": patch.get("kind"),
            "name": patch.get("metadata", {}).get("name"),
        }
        hits = [r for r in resources if _matches(r, target)]
        if not hits:
            raise RenderError(f"patch target {target} matches no resource")
        for resource in hits:
            body = {k: v for k, v in patch.items() if k not in ("apiVersion", "kind", "metadata")}
            _merge(resource, copy.deepcopy(body))


def _split_image(image: str) -> tuple[str, str, str]:
    """``name[:tag][@digest]`` -> (name, tag, digest)."""
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    tag = ""
    if ":" in last:
        name, _, tag = name.rpartition(":")
    return name, tag, digest


def _set_images(resources: list[Resource], images: list[dict[str, Any]]) -> None:
    for entry in images:
        unknown = set(entry) - {"name", "newName", "newTag", "digest"}
        if unknown:
            raise RenderError(f"images: unsupported {sorted(unknown)}")
    for resource in resources:
        for pod in _pod_specs(resource):
            for container in _containers(pod):
                name, tag, digest = _split_image(container["image"])
                for entry in images:
                    if entry["name"] != name:
                        continue
                    name = entry.get("newName", name)
                    if "digest" in entry:
                        tag, digest = "", entry["digest"]
                    elif "newTag" in entry:
                        tag, digest = str(entry["newTag"]), ""
                    image = name + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")
                    container["image"] = image


def _add_labels(resources: list[Resource], entries: list[dict[str, Any]]) -> None:
    for entry in entries:
        unknown = set(entry) - {"pairs", "includeSelectors", "includeTemplates"}
        if unknown or entry.get("includeSelectors"):
            raise RenderError("labels: only pairs and includeTemplates (no selectors) supported")
        pairs = {str(k): str(v) for k, v in entry["pairs"].items()}
        for resource in resources:
            resource.setdefault("metadata", {}).setdefault("labels", {}).update(pairs)
            if entry.get("includeTemplates") and resource["kind"] in _POD_TEMPLATE_KINDS:
                template = resource["spec"].setdefault("template", {})
                template.setdefault("metadata", {}).setdefault("labels", {}).update(pairs)


def _set_replicas(resources: list[Resource], entries: list[dict[str, Any]]) -> None:
    for entry in entries:
        hits = [
            r
            for r in resources
            if r["kind"] in _REPLICA_KINDS and r["metadata"].get("name") == entry["name"]
        ]
        if not hits:
            raise RenderError(f"replicas: no workload named {entry['name']}")
        for resource in hits:
            resource["spec"]["replicas"] = int(entry["count"])


def render(directory: Path) -> list[Resource]:
    """The resources of the kustomization in ``directory`` (see the module docstring)."""
    path = directory / "kustomization.yaml"
    try:
        kustomization = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise RenderError(f"{path}: {e}") from e
    unknown = set(kustomization) - _KNOWN_FIELDS
    if unknown:
        raise RenderError(f"{path}: fields this renderer does not implement: {sorted(unknown)}")
    resources: list[Resource] = []
    for entry in kustomization.get("resources", []):
        source = directory / entry
        resources += render(source) if source.is_dir() else _load_yaml(source)
    generated: dict[str, str] = {}
    for spec in kustomization.get("configMapGenerator", []):
        configmap, name = _generate_configmap(spec, directory)
        resources.append(configmap)
        generated[name] = configmap["metadata"]["name"]
    _apply_patches(resources, kustomization.get("patches", []), directory)
    if "namespace" in kustomization:
        for resource in resources:
            if resource["kind"] not in _CLUSTER_SCOPED:
                resource.setdefault("metadata", {})["namespace"] = kustomization["namespace"]
    _add_labels(resources, kustomization.get("labels", []))
    _set_images(resources, kustomization.get("images", []))
    _set_replicas(resources, kustomization.get("replicas", []))
    _rename_configmaps(resources, generated)
    seen: set[str] = set()
    for resource in resources:
        key = resource_id(resource)
        if key in seen:
            raise RenderError(f"{path}: {key} appears twice")
        seen.add(key)
    return resources


def dump(resources: list[Resource]) -> str:
    """The resources as one multi-document YAML stream."""
    return str(yaml.safe_dump_all(resources, sort_keys=False, default_flow_style=False))
