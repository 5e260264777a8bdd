"""Every package with a `py_lint_test` is checked by `//:lint`: listed in the root BUILD."""

from __future__ import annotations

import os
import re
from pathlib import Path

SKIP = {".git", "node_modules"}
DECLARES_LINT = re.compile(r"^\s*(py_lint_test|conveyor_model)\(", re.MULTILINE)


def _workspace() -> Path:
    """The source tree: the root BUILD file is a runfile linked to it."""
    return Path(os.path.realpath("BUILD.bazel")).parent


def _packages_with_lint(root: Path) -> set[str]:
    found = set()
    for directory, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in SKIP and not d.startswith("bazel-")]
        if "BUILD.bazel" in files:
            text = (Path(directory) / "BUILD.bazel").read_text(encoding="utf-8")
            if DECLARES_LINT.search(text):
                found.add(Path(directory).relative_to(root).as_posix())
    found.discard(".")
    return found


def test_every_package_with_a_lint_test_is_listed_in_the_root_lint() -> None:
    root = _workspace()
    listed = set(re.findall(r'"//([^":]+):lint"', (root / "BUILD.bazel").read_text()))
    declared = _packages_with_lint(root)
    assert declared, f"no package with a py_lint_test found under {root}"
    missing = sorted(declared - listed)
    assert not missing, f"list these in the root BUILD's //:lint: {missing}"
    stale = sorted(listed - declared)
    assert not stale, f"//:lint lists packages without a py_lint_test: {stale}"
