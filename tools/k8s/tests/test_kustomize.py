"""Tests of the kustomize subset: resources, generators and hashes, patches, transformers."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from tools.k8s.kustomize import RenderError, configmap_hash, render

DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web"},
    "spec": {
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {
                "containers": [
                    {
                        "name": "web",
                        "image": "conveyor/web:dev",
                        "env": [
                            {
                                "name": "X",
                                "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "X"}},
                            }
                        ],
                    },
                    {"name": "side", "image": "localhost:5000/side:1"},
                ],
                "volumes": [{"name": "conf", "configMap": {"name": "settings"}}],
            },
        },
    },
}


def _write(directory: Path, kustomization: dict[str, Any], files: dict[str, Any]) -> Path:
    """Writes the kustomization and ``files`` (text, or a list of resources as YAML)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    for name, content in files.items():
        text = content if isinstance(content, str) else yaml.safe_dump_all(content)
        (directory / name).write_text(text)
    return directory


def _by_kind(resources: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [r for r in resources if r["kind"] == kind]
    return found


def test_generator_hashes_the_name_and_references_follow(tmp_path: Path) -> None:
    base = _write(
        tmp_path / "base",
        {
            "resources": ["web.yaml"],
            "configMapGenerator": [
                {"name": "settings", "literals": ["X=1"], "files": ["run.sh"], "envs": ["more.env"]}
            ],
        },
        {"web.yaml": [DEPLOYMENT], "run.sh": "echo hi\n", "more.env": "# comment\nY=2\n"},
    )
    resources = render(base)
    configmap = _by_kind(resources, "ConfigMap")
    data = {"X": "1", "run.sh": "echo hi\n", "Y": "2"}
    assert configmap["data"] == data
    assert configmap["metadata"]["name"] == "settings-" + configmap_hash("settings", data)
    pod = _by_kind(resources, "Deployment")["spec"]["template"]["spec"]
    ref = pod["containers"][0]["env"][0]["valueFrom"]["configMapKeyRef"]
    assert ref["name"] == configmap["metadata"]["name"]
    assert pod["volumes"][0]["configMap"]["name"] == configmap["metadata"]["name"]


def test_hash_changes_with_content_and_avoids_some_characters() -> None:
    first, second = configmap_hash("c", {"a": "1"}), configmap_hash("c", {"a": "2"})
    assert first != second
    assert len(first) == 10
    assert not set(first + second) & set("013ae")


def test_overlay_namespace_labels_images_replicas_and_patch(tmp_path: Path) -> None:
    _write(tmp_path / "base", {"resources": ["web.yaml"]}, {"web.yaml": [DEPLOYMENT]})
    patch = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"template": {"spec": {"containers": [{"name": "web", "args": ["--fast"]}]}}},
    }
    overlay = _write(
        tmp_path / "overlay",
        {
            "resources": ["../base"],
            "namespace": "prod",
            "labels": [{"pairs": {"team": "ml"}, "includeTemplates": True}],
            "images": [
                {
                    "name": "conveyor/web",
                    "newName": "registry.example.com/conveyor/web",
                    "newTag": "1.2.0",
                },
                {"name": "localhost:5000/side", "digest": "sha256:" + "a" * 64},
            ],
            "replicas": [{"name": "web", "count": 3}],
            "patches": [{"path": "patch.yaml"}],
        },
        {"patch.yaml": [patch]},
    )
    (deployment,) = render(overlay)
    assert deployment["metadata"]["namespace"] == "prod"
    assert deployment["metadata"]["labels"] == {"team": "ml"}
    assert deployment["spec"]["template"]["metadata"]["labels"] == {"app": "web", "team": "ml"}
    assert deployment["spec"]["selector"] == {"matchLabels": {"app": "web"}}
    assert deployment["spec"]["replicas"] == 3
    web, side = deployment["spec"]["template"]["spec"]["containers"]
    assert web["image"] == "registry.example.com/conveyor/web:1.2.0"
    assert web["args"] == ["--fast"]
    assert web["env"] == DEPLOYMENT["spec"]["template"]["spec"]["containers"][0]["env"]
    assert side["image"] == "localhost:5000/side@sha256:" + "a" * 64


def test_inline_patch_with_target(tmp_path: Path) -> None:
    other = copy.deepcopy(DEPLOYMENT)
    other["metadata"]["name"] = "other"
    directory = _write(
        tmp_path,
        {
            "resources": ["web.yaml"],
            "patches": [
                {
                    "target": {"group": "apps", "kind": "Deployment", "name": "other"},
                    "patch": "spec:\n  paused: true\n",
                }
            ],
        },
        {"web.yaml": [DEPLOYMENT, other]},
    )
    web, patched = render(directory)
    assert "paused" not in web["spec"]
    assert patched["spec"]["paused"] is True


@pytest.mark.parametrize(
    "kustomization",
    [
        {"resources": ["web.yaml"], "commonAnnotations": {"a": "b"}},
        {"resources": ["web.yaml"], "labels": [{"pairs": {"a": "b"}, "includeSelectors": True}]},
        {"resources": ["web.yaml"], "patches": [{"patch": "- op: add\n  path: /x\n  value: 1\n"}]},
        {
            "resources": ["web.yaml"],
            "patches": [{"target": {"kind": "Service"}, "patch": "a: 1\n"}],
        },
        {"resources": ["web.yaml", "web.yaml"]},
        {"resources": ["web.yaml"], "replicas": [{"name": "nothing", "count": 1}]},
    ],
)
def test_what_is_not_implemented_or_wrong_is_an_error(
    tmp_path: Path, kustomization: dict[str, Any]
) -> None:
    directory = _write(tmp_path, kustomization, {"web.yaml": [DEPLOYMENT]})
    with pytest.raises(RenderError):
        render(directory)
