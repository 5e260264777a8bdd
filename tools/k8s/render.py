"""``bazel run //tools/k8s:render -- deploy/k8s/overlays/example``: prints the rendered
manifests (the subset of ``kustomize build`` in :mod:`tools.k8s.kustomize`), validated.

Paths are relative to the workspace. Exits 1 on a render or validation error.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from tools.k8s.kustomize import RenderError, dump, render
from tools.k8s.validate import KUBERNETES_VERSION, custom_schemas, validate

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    parser = argparse.ArgumentParser(description="Render and validate a kustomization.")
    parser.add_argument("directory", type=Path, help="directory with a kustomization.yaml")
    parser.add_argument("--schemas", type=Path, default=Path("deploy/k8s/schemas"))
    parser.add_argument("--kubernetes-version", default=KUBERNETES_VERSION)
    args = parser.parse_args(argv)
    workspace = Path(os.environ.get("BUILD_WORKSPACE_DIRECTORY", "."))
    directory = workspace / args.directory
    try:
        resources = render(directory)
    except RenderError as e:
        print(f"render: {e}", file=sys.stderr)
        return 1
    report = validate(resources, custom_schemas(workspace / args.schemas), args.kubernetes_version)
    print(dump(resources), end="")
    for error in report.errors:
        print(f"render: {error}", file=sys.stderr)
    print(f"render: {directory}: {report.summary()}", file=sys.stderr)
    return 1 if report.errors else 0


if __name__ == "__main__":
    sys.exit(main())
