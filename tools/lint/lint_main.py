"""Lint and type checks of one Bazel package, run as a test by `py_lint_test`.

ruff checks lint and formatting of every file; mypy checks source files with `strict = true`
(pyproject.toml) and test files with a looser profile (untyped test functions are fine, but
their bodies are still checked). Exits non-zero on any finding.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from mypy import api as mypy_api

CONFIG = "pyproject.toml"
RELAXED_FOR_TESTS = [
    "--allow-untyped-defs",
    "--allow-incomplete-defs",
    "--allow-untyped-decorators",
    "--allow-untyped-calls",
    "--check-untyped-defs",
    "--disable-error-code=no-any-return",
    "--disable-error-code=type-arg",
]


def is_test_file(path: str) -> bool:
    """Test modules, fixtures and test-only helpers get the looser mypy profile."""
    name = Path(path).name
    parts = Path(path).parts
    return (
        name.startswith("test_")
        or name.endswith("_test.py")
        or name == "conftest.py"
        or "tests" in parts
    )


def find_ruff() -> str:
    runfiles = Path(os.environ.get("RUNFILES_DIR", Path.cwd().parent))
    candidates = (runfiles / "pypi" / "bin" / "ruff", Path.cwd().parent / "pypi" / "bin" / "ruff")
    for candidate in candidates:
        if candidate.exists():
            return str(candidate)
    raise SystemExit("ruff binary not found in runfiles (@pypi//:bin/ruff)")


def run_ruff(files: list[str]) -> bool:
    ruff = find_ruff()
    cache = ["--no-cache", "--config", CONFIG]
    ok = True
    for command in (["check", *cache], ["format", "--check", "--diff", *cache]):
        result = subprocess.run([ruff, *command, *files], check=False)
        ok = ok and result.returncode == 0
    return ok


def run_mypy(files: list[str], extra: list[str]) -> bool:
    if not files:
        return True
    cache = os.path.join(os.environ.get("TEST_TMPDIR", "/tmp"), "mypy_cache")
    args = ["--config-file", CONFIG, "--cache-dir", cache, "--no-error-summary", *extra, *files]
    stdout, stderr, status = mypy_api.run(args)
    sys.stdout.write(stdout)
    sys.stderr.write(stderr)
    return status == 0


def main() -> int:
    files = sorted(sys.argv[1:])
    if not files:
        print("py_lint_test: no files to check", file=sys.stderr)
        return 2
    # mypy resolves first-party modules (and generated *_pb2.pyi) from the runfiles root.
    os.environ["MYPYPATH"] = os.getcwd()
    sources = [f for f in files if not is_test_file(f)]
    tests = [f for f in files if is_test_file(f)]
    ok = run_ruff(files)
    ok = run_mypy(sources, []) and ok
    ok = run_mypy(tests, RELAXED_FOR_TESTS) and ok
    print(f"checked {len(files)} files: {'ok' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
