"""Python test rules of Conveyor: every test file is a Bazel test target run by pytest."""

_PYTEST_MAIN = "//tools/python:pytest_main.py"
_BROKER_PLUGIN = "//tools/stack:pytest_plugin"
_BROKER_TARBALLS = "//tools/stack:broker_tarballs"

def py_pytest_test(name, srcs, deps = [], data = [], tags = [], size = "small", env = {}, args = [], brokers = False, **kwargs):
    """A py_test that runs pytest (with pytest-asyncio) on `srcs`.

    Args:
      name: the test target's name.
      srcs: the test files (and any conftest.py / helper modules they use).
      deps: libraries under test and helpers.
      data: run-time files.
      tags: e.g. `["container", "exclusive"]` for tests that drive a container engine.
      size: Bazel test size (sets the timeout).
      env: extra environment variables.
      args: extra pytest arguments.
      brokers: True for a test that needs RabbitMQ and Redis: the target starts its own pair
        (tools/stack/pytest_plugin.py; mode by CONVEYOR_TEST_BROKERS) and gets AMQP_URL and
        REDIS_URL. The broker images become data (built by `bazel test`, part of the cache key);
        the test runs outside the sandbox (podman needs its storage) and is tagged
        `integration` and `requires-network`.
      **kwargs: passed to py_test (e.g. `flaky`, `shard_count`, `timeout`).
    """
    test_files = [src for src in srcs if src.split("/")[-1].startswith("test_") or src.endswith("_test.py")]
    plugin_args = []
    if brokers:
        deps = deps + [_BROKER_PLUGIN]
        data = data + [_BROKER_TARBALLS]
        env = dict(env)
        env["CONVEYOR_BROKER_TARBALLS"] = "$(rootpaths %s)" % _BROKER_TARBALLS
        plugin_args = ["-p", "tools.stack.pytest_plugin"]
        tags = tags + [t for t in ["integration", "requires-network", "no-sandbox"] if t not in tags]
    native.py_test(
        name = name,
        srcs = srcs + [_PYTEST_MAIN],
        main = _PYTEST_MAIN,
        args = plugin_args + ["$(rootpath %s)" % src for src in (test_files or srcs)] + args,
        deps = deps + ["@pypi//:pytest", "@pypi//:pytest_asyncio"],
        data = data,
        tags = tags,
        size = size,
        env = env,
        python_version = "PY3",
        srcs_version = "PY3",
        **kwargs
    )

def py_test_files(srcs, name = None, **kwargs):
    """One `py_pytest_test` per test file, named after the file (`tests/test_x.py` -> `test_x`).

    Args:
      srcs: the test files, usually `glob(["test_*.py"])`.
      name: unused (every target is named after its file); accepted so the call reads naturally.
      **kwargs: passed to every `py_pytest_test` (deps, data, size, tags, env, brokers, ...).
    """
    for src in srcs:
        py_pytest_test(
            name = src.split("/")[-1][:-len(".py")],
            srcs = [src],
            **kwargs
        )
