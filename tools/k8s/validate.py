"""Schema validation of rendered manifests, offline.

Built-in kinds go to ``kubernetes-validate`` (its bundled schemas, strict: unknown fields are
errors) for one pinned Kubernetes version; custom resources go to JSON schemas found in a
directory, named ``<group>_<version>_<Kind>.json``. A resource with neither is an error: nothing
passes unchecked.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate  # type: ignore[import-untyped]

from tools.k8s.kustomize import resource_id

__all__ = ["KUBERNETES_VERSION", "Report", "custom_schemas", "validate"]

KUBERNETES_VERSION = "1.30"
"""The Kubernetes version the manifests are written for (``preStop.sleep`` needs 1.30)."""


@dataclass
class Report:
    """What was validated against what, and what failed."""

    by_schema: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Resources validated (passed or not)."""
        return sum(self.by_schema.values())

    def summary(self) -> str:
        """One line, e.g. ``14 resources: 12 Kubernetes 1.30 (strict), 2 ScaledObject schema``."""
        parts = ", ".join(f"{n} {what}" for what, n in sorted(self.by_schema.items()))
        return f"{self.total} resources: {parts}; {len(self.errors)} errors"


def _schema_key(api_version: str, kind: str) -> str:
    group, _, version = api_version.rpartition("/")
    return f"{group or 'core'}_{version}_{kind}"


def custom_schemas(directory: Path) -> dict[str, dict[str, Any]]:
    """The JSON schemas in ``directory`` by ``<group>_<version>_<Kind>``."""
    return {path.stem: json.loads(path.read_text()) for path in sorted(directory.glob("*.json"))}


def validate(
    resources: Iterable[dict[str, Any]],
    custom: dict[str, dict[str, Any]],
    version: str = KUBERNETES_VERSION,
) -> Report:
    """Validates every resource; see the module docstring."""
    report = Report()
    for resource in resources:
        name = resource_id(resource)
        key = _schema_key(resource["apiVersion"], resource["kind"])
        if key in custom:
            report.by_schema[f"{resource['kind']} (custom schema)"] += 1
            validator = jsonschema.Draft202012Validator(custom[key])
            for error in sorted(validator.iter_errors(resource), key=lambda e: list(e.path)):
                path = ".".join(str(p) for p in error.path)
                report.errors.append(f"{name}: {path}: {error.message}")
            continue
        report.by_schema[f"Kubernetes {version} (strict)"] += 1
        try:
            kubernetes_validate.validate(resource, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            report.errors.append(f"{name}: {path}: {e.message}")
        except kubernetes_validate.SchemaNotFoundError:
            report.errors.append(
                f"{name}: no schema for {resource['apiVersion']} {resource['kind']}"
            )
    return report
