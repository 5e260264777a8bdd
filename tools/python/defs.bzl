"""Python test rules of Conveyor: every test file is a Bazel test target run by pytest."""

_PYTEST_MAIN = "//tools/python:pytest_main.py"

def py_pytest_test(name, srcs, deps = [], data = [], tags = [], size = "small", env = {}, args = [], **kwargs):
    """A py_test that runs pytest (with pytest-asyncio) on `srcs`.

    Args:
      name: the test target's name.
      srcs: the test files (and any conftest.py / helper modules they use).
      deps: libraries under test and helpers.
      data: run-time files.
      tags: tag tests that talk to RabbitMQ or Redis `["integration", "requires-network"]`.
      size: Bazel test size (sets the timeout).
      env: extra environment variables.
      args: extra pytest arguments.
      **kwargs: passed to py_test (e.g. `flaky`, `shard_count`, `timeout`).
    """
    test_files = [src for src in srcs if src.split("/")[-1].startswith("test_") or src.endswith("_test.py")]
    native.py_test(
        name = name,
        srcs = srcs + [_PYTEST_MAIN],
        main = _PYTEST_MAIN,
        args = ["$(rootpath %s)" % src for src in (test_files or srcs)] + args,
        deps = deps + ["@pypi//:pytest", "@pypi//:pytest_asyncio"],
        data = data,
        tags = tags,
        size = size,
        env = env,
        python_version = "PY3",
        srcs_version = "PY3",
        **kwargs
    )
