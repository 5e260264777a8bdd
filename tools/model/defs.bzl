"""`conveyor_model`: one macro call turns a model package into its library, server and tests."""

load("//tools/lint:defs.bzl", "py_lint_test")
load("//tools/oci:defs.bzl", "oci_image")
load("//tools/python:defs.bzl", "py_pytest_test")

_MODEL_HEALTH = (
    "import json, os, urllib.request; url = os.environ['REGISTRY_URL'] + '/models/' + " +
    "os.environ['CONVEYOR_HEALTH_MODEL']; " +
    "assert json.load(urllib.request.urlopen(url, timeout=4))['status'] == 'alive'"
)

def conveyor_model(
        name,
        srcs,
        deps = [],
        data = [],
        main = "__main__.py",
        tests = [],
        test_deps = [],
        test_data = [],
        visibility = ["//visibility:public"]):
    """A Conveyor model: a `Model` subclass served by `worker_base`.

    Creates:
      <name>:   py_library of the model (name it after the package directory),
      server:   py_binary running the worker (`python -m models.<name>` in dev),
      <test>:   one py_pytest_test per file in `tests` (named after the file),
      lint:     ruff + mypy over the package,
      image:    its OCI image, conveyor/<name>:dev (tools/oci/defs.bzl).

    Args:
      name: the library's name, the package directory's name (e.g. "model_a").
      srcs: the model's Python files, including `main`.
      deps: the model's py_proto_library targets and third-party deps; //worker_base is added.
      data: run-time files (e.g. trained weights).
      main: the worker entry point among `srcs`.
      tests: test files; each becomes its own test target.
      test_deps: extra deps of the tests.
      test_data: extra run-time files of the tests.
      visibility: visibility of the library and the server.
    """
    all_deps = deps + ["//worker_base"]
    native.py_library(
        name = name,
        srcs = srcs,
        deps = all_deps,
        data = data,
        visibility = visibility,
    )
    native.py_binary(
        name = "server",
        srcs = [main],
        main = main,
        python_version = "PY3",
        deps = [":" + name],
        visibility = visibility,
    )
    # The worker's image: `bazel run //models/<name>:image` loads conveyor/<name>:dev.
    # Healthy while the registry reports the model alive (heartbeats within its liveness window).
    oci_image(
        name = "image",
        binary = ":server",
        env = {"CONVEYOR_HEALTH_MODEL": name},
        healthcheck = ["CMD", "/usr/bin/python3.11", "-c", _MODEL_HEALTH],
        module = native.package_name().replace("/", "."),
        tag = "conveyor/%s:dev" % name,
        visibility = visibility,
    )
    for test in tests:
        py_pytest_test(
            name = test.split("/")[-1][:-len(".py")],
            srcs = [test],
            deps = [":" + name] + test_deps,
            data = test_data,
        )
    py_lint_test(
        name = "lint",
        srcs = srcs + tests,
        deps = [":" + name] + test_deps,
    )
