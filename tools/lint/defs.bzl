"""`py_lint_test`: ruff (lint + format) and mypy (strict on source) as a Bazel test."""

_LINT_MAIN = "//tools/lint:lint_main.py"

def py_lint_test(name = "lint", srcs = None, deps = [], data = [], **kwargs):
    """Checks a package's Python files; `bazel test //...` fails on any lint or type error.

    Args:
      name: the test's name, `lint` by convention (one per package).
      srcs: the files to check; by default every .py file of the package (recursively).
      deps: every library the files import (the package's own py_library, py_binary and test
        deps), so mypy can follow the imports.
      data: extra files (e.g. generated .pyi stubs).
      **kwargs: passed to py_test.
    """
    if srcs == None:
        srcs = native.glob(["**/*.py"])
    # The lint package checks its own entry point, which is already among its files.
    own_main = native.package_name() == "tools/lint" and "lint_main.py" in srcs
    native.py_test(
        name = name,
        srcs = srcs + ([] if own_main else [_LINT_MAIN]),
        main = _LINT_MAIN,
        args = ["$(rootpath %s)" % src for src in srcs],
        deps = deps + ["@pypi//:mypy", "@pypi//:ruff", "@pypi//:types_protobuf", "@pypi//:pytest", "@pypi//:pytest_asyncio"],
        data = data + ["//:pyproject.toml", "@pypi//:bin/ruff"],
        tags = kwargs.pop("tags", []) + ["lint"],
        python_version = "PY3",
        srcs_version = "PY3",
        **kwargs
    )
