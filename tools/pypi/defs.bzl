"""The `pypi_packages` repository rule: third-party Python from the one pinned lock file.

Wheels are downloaded by the host's pip client (`pip download --require-hashes --no-deps
--only-binary=:all:`, for CPython 3.11 on manylinux x86_64 whatever Python the host runs, and
ignoring the host's pip configuration), then unpacked and described by
`install_wheels.py` running on the hermetic interpreter. The result is one
`py_library` per distribution: `@pypi//:fastapi`, `@pypi//:aio_pika`, ...
"""

_INSTALL = Label("//tools/pypi:install_wheels.py")

# pip does not expand a manylinux platform to the older ones it implies: list them all.
_PLATFORMS = ["manylinux_2_%d_x86_64" % minor for minor in range(36, 4, -1)] + [
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
    "linux_x86_64",
]

def _pypi_packages_impl(rctx):
    lock = rctx.path(rctx.attr.lock)
    python = rctx.path(rctx.attr.python)
    args = [
        "python3",
        "-m",
        "pip",
        "download",
        "--isolated",
        "--disable-pip-version-check",
        "--no-input",
        "--no-deps",
        "--require-hashes",
        "--only-binary=:all:",
        "--implementation",
        "cp",
        "--python-version",
        "3.11",
        "--abi",
        "cp311",
        "--dest",
        "wheels",
        "--requirement",
        str(lock),
    ]
    for platform in _PLATFORMS:
        args += ["--platform", platform]
    result = rctx.execute(args, timeout = 1800, quiet = True)
    if result.return_code != 0:
        fail(("downloading the wheels of %s failed (is `python3 -m pip` installed? `./bazelw` " +
              "installs it):\n%s") % (rctx.attr.lock, result.stderr))
    result = rctx.execute([str(python), str(rctx.path(_INSTALL)), "wheels", "."], timeout = 1200)
    if result.return_code != 0:
        fail("unpacking the wheels failed:\n%s%s" % (result.stdout, result.stderr))
    rctx.delete("wheels")

pypi_packages = repository_rule(
    implementation = _pypi_packages_impl,
    attrs = {
        "lock": attr.label(mandatory = True, allow_single_file = True, doc = "requirements.lock"),
        "python": attr.label(mandatory = True, allow_single_file = True, doc = "hermetic python3"),
    },
    environ = ["PATH"],
    doc = "One py_library per distribution pinned (with hashes) in `lock`.",
)
