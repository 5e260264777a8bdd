"""`py_lint_test` and `py_lint_all`: ruff (lint + format) and mypy (strict on source) as Bazel tests."""

_LINT_MAIN = "//tools/lint:lint_main.py"

_TOOLS = ["@pypi//:mypy", "@pypi//:ruff", "@pypi//:types_protobuf", "@pypi//:pytest", "@pypi//:pytest_asyncio"]

def py_lint_test(name = "lint", srcs = None, deps = [], data = [], **kwargs):
    """A package's Python files, checked with every other package's by `//:lint`.

    `//:lint` (`py_lint_all` in the root BUILD) runs ruff and mypy once over the files of every
    package it lists: what `bazel test //...` runs. Each package's own `:lint` test checks the
    package alone (`bazel test //api:lint`); it is tagged `manual`, since mypy would analyse the
    same libraries again for each package.

    Args:
      name: the test's name, `lint` by convention (one per package); `<name>_srcs` and
        `<name>_deps` are what `//:lint` takes (list the package there).
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
    native.filegroup(name = name + "_srcs", srcs = srcs, visibility = ["//:__pkg__"])
    native.py_library(
        name = name + "_deps",
        deps = deps,
        data = data,
        testonly = True,
        visibility = ["//:__pkg__"],
    )
    native.py_test(
        name = name,
        srcs = srcs + ([] if own_main else [_LINT_MAIN]),
        main = _LINT_MAIN,
        args = ["$(rootpath %s)" % src for src in srcs],
        deps = deps + _TOOLS,
        data = data + ["//:pyproject.toml", "@pypi//:bin/ruff"],
        tags = kwargs.pop("tags", []) + ["lint", "manual"],
        python_version = "PY3",
        srcs_version = "PY3",
        **kwargs
    )

def py_lint_all(name, packages, **kwargs):
    """One ruff and one mypy run over the files of every listed package's `py_lint_test`.

    Args:
      name: the test's name.
      packages: the `py_lint_test` targets (`//api:lint`, ...) whose files to check: every
        package that has one (`//tools/lint:test_lint_coverage` fails naming a missing one).
      **kwargs: passed to py_test.
    """
    files = [package + "_srcs" for package in packages]
    native.py_test(
        name = name,
        srcs = [_LINT_MAIN],
        main = _LINT_MAIN,
        args = ["$(rootpaths %s)" % group for group in files],
        deps = [package + "_deps" for package in packages] + _TOOLS,
        data = files + ["//:pyproject.toml", "@pypi//:bin/ruff"],
        tags = kwargs.pop("tags", []) + ["lint"],
        python_version = "PY3",
        srcs_version = "PY3",
        **kwargs
    )
