"""Repository rules that turn pinned Debian 12 packages into Bazel inputs.

`debian_packages` fetches `.deb` files with the host's `apt-get download NAME=VERSION` (the only
way this project reaches the Debian archive), checks each against its pinned sha256, and unpacks
them into one root file system. `debian_python` does the same for the interpreter set and adds
a hermetic `python3` launcher plus a Python toolchain on top of it.
"""

_FETCH = Label("//tools/debian:fetch_debs.sh")
_FIX_LINKS = Label("//tools/debian:relativize_links.sh")

def _fetch_and_unpack(rctx):
    """Downloads and unpacks rctx.attr.packages into debs/ and rootfs/."""
    args = [str(rctx.path(_FETCH)), "debs"]
    for name, pin in rctx.attr.packages.items():
        version, sha256 = pin.split(" ")
        args.append("%s=%s=%s" % (name, version, sha256))
    result = rctx.execute(args, timeout = 1200, quiet = True)
    if result.return_code != 0:
        fail("fetching Debian packages for @%s failed:\n%s" % (rctx.name, result.stderr))
    for name in sorted(rctx.attr.packages.keys()):
        result = rctx.execute(["dpkg-deb", "-x", "debs/%s.deb" % name, "rootfs"])
        if result.return_code != 0:
            fail("dpkg-deb -x %s.deb failed: %s" % (name, result.stderr))
    result = rctx.execute([str(rctx.path(_FIX_LINKS)), "rootfs"])
    if result.return_code != 0:
        fail("relativize_links.sh failed: %s" % result.stderr)

_PACKAGES_DOC = "{name: 'VERSION SHA256'}: the pinned packages (see tools/debian/*_packages.bzl)."

def _debian_packages_impl(rctx):
    _fetch_and_unpack(rctx)
    rctx.file("BUILD.bazel", """\
package(default_visibility = ["//visibility:public"])

filegroup(name = "debs", srcs = glob(["debs/*.deb"]))
""")

debian_packages = repository_rule(
    implementation = _debian_packages_impl,
    attrs = {"packages": attr.string_dict(mandatory = True, doc = _PACKAGES_DOC)},
    doc = "Pinned Debian packages, exposed as `:debs` (the checked .deb files).",
)

def _debian_python_impl(rctx):
    _fetch_and_unpack(rctx)
    rctx.template("python3", Label("//tools/python:python3.sh.tpl"), executable = True)
    # Precompile the standard library once, so no test pays for it at import time.
    result = rctx.execute(
        ["./python3", "-m", "compileall", "-q", "-j", "0", "rootfs/usr/lib/python3.11"],
        timeout = 600,
    )
    if result.return_code not in (0, 1):
        fail("compiling the standard library failed: %s" % result.stderr)
    result = rctx.execute(["./python3", "-c", "import ssl, ctypes, sqlite3, zlib, bz2, lzma, uuid"])
    if result.return_code != 0:
        fail("the hermetic interpreter does not start:\n%s" % result.stderr)
    rctx.template("BUILD.bazel", Label("//tools/python:debian_python.BUILD.tpl"))

debian_python = repository_rule(
    implementation = _debian_python_impl,
    attrs = {"packages": attr.string_dict(mandatory = True, doc = _PACKAGES_DOC)},
    doc = "Debian 12's python3.11 from pinned packages, as a Bazel Python toolchain.",
)

def pins(packages):
    """Turns {name: (version, sha256)} from a *_packages.bzl file into a string_dict attribute."""
    return {name: "%s %s" % pin for name, pin in packages.items()}
