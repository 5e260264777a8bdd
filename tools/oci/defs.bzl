"""`oci_image`: an OCI image of a Python program, built by //tools/oci on the hermetic Python.

Layers, in order: the base (pinned Debian packages plus generated users, `/tmp` and the non-root
home), the third-party packages of `@pypi` (under /usr/local/lib/python3.11/dist-packages), the
wheels of `wheels` installed as pip would (only when there are some), and the program's own files
(under /app). Bytecode is compiled at build time into every layer.
`bazel build` gives `<name>.tar` (an OCI layout that `docker load` and `podman load` read);
`bazel run` loads it into Docker or podman and prints the tag.
"""

_CACHE_TAG = "cpython-311"
_PYTHON = "/usr/bin/python3.11"
_APP_ROOT = "/app"
_SITE_PACKAGES = "/usr/local/lib/python3.11/dist-packages"
_WHEEL_TARGET = {
    "site_packages": _SITE_PACKAGES,
    "scripts": "/usr/local/bin",
    "interpreter": _PYTHON,
}
_NONROOT = {"uid": 65532, "gid": 65532, "name": "nonroot", "home": "/home/nonroot"}
_DEFAULT_ENV = {
    "LANG": "C.UTF-8",
    "PATH": "/usr/local/bin:/usr/local/sbin:/usr/bin:/usr/sbin:/bin:/sbin",
}
_PYTHON_ENV = {
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONPATH": _APP_ROOT,
    "PYTHONUNBUFFERED": "1",
}

OciImageInfo = provider(
    doc = "An image tarball built by oci_image and the tag `bazel run` gives it.",
    fields = {"tarball": "File: the OCI layout tarball", "tag": "string: e.g. conveyor/api:dev"},
)

def _image_path(f):
    """Returns where a runfile goes in the image, or None when the base provides it."""
    repo = f.owner.workspace_name if f.owner else ""
    if repo == "pypi":
        marker = "site-packages/"
        index = f.short_path.find(marker)
        if index < 0:
            return None
        return ("pypi", _SITE_PACKAGES + "/" + f.short_path[index + len(marker):])
    if repo == "":
        return ("app", _APP_ROOT + "/" + f.short_path)
    return None  # the interpreter and its libraries come from the base's Debian packages

def _healthcheck(ctx):
    if not ctx.attr.healthcheck:
        return None
    return {
        "test": ctx.attr.healthcheck,
        "interval_seconds": 5,
        "timeout_seconds": 5,
        "start_period_seconds": 10,
        "retries": 5,
    }

def _oci_image_impl(ctx):
    pypi_files, app_files = [], []
    program_files = depset()
    if ctx.attr.binary:
        info = ctx.attr.binary[DefaultInfo]
        program_files = info.default_runfiles.files
        executable = info.files_to_run.executable
        for f in sorted(program_files.to_list(), key = _short):
            where = _image_path(f)
            if f == executable or where == None:
                continue
            layer, dest = where
            (pypi_files if layer == "pypi" else app_files).append({"src": f.path, "dest": dest})
    third_party_files = depset()
    if ctx.attr.third_party:
        if ctx.attr.binary:
            fail("third_party: the binary's runfiles already give the third-party layer")
        third_party_files = ctx.attr.third_party[DefaultInfo].default_runfiles.files
        for f in sorted(third_party_files.to_list(), key = _short):
            where = _image_path(f)
            if where != None and where[0] == "pypi":
                pypi_files.append({"src": f.path, "dest": where[1]})
    wheels = ctx.files.wheels
    extra_files = []
    for target, dest in ctx.attr.files.items():
        for f in target.files.to_list():
            extra_files.append(f)
            app_files.append({"src": f.path, "dest": dest})
    directories = {}
    for path, owner in ctx.attr.directories.items():
        if owner not in ("root", "nonroot"):
            fail("directories: owner of %s must be 'root' or 'nonroot', not %r" % (path, owner))
        uid = _NONROOT["uid"] if owner == "nonroot" else 0
        directories[path] = {"mode": 493, "uid": uid, "gid": uid}  # 0755
    env = dict(_DEFAULT_ENV)
    if ctx.attr.binary:
        env.update(_PYTHON_ENV)
    env.update(ctx.attr.env)
    config = {
        "entrypoint": [_PYTHON, "-m", ctx.attr.module] if ctx.attr.module else ctx.attr.entrypoint,
        "cmd": ctx.attr.cmd,
        "env": env,
        "user": "%d:%d" % (_NONROOT["uid"], _NONROOT["gid"]),
        "workdir": ctx.attr.workdir,
        "exposed_ports": ["%s/tcp" % p for p in ctx.attr.ports],
        "labels": ctx.attr.labels,
    }
    health = _healthcheck(ctx)
    if health:
        config["healthcheck"] = health
    debs = ctx.files.base
    spec = {
        "tag": ctx.attr.tag,
        "python_cache_tag": _CACHE_TAG,
        "layers": [
            {
                "name": "base",
                "debs": [f.path for f in debs],
                "rootfs": _NONROOT,
                "compile_python": True,
                "symlinks": ctx.attr.symlinks,
                "directories": directories,
            },
            {"name": "third-party", "files": pypi_files, "compile_python": True},
        ] + ([{
            "name": "wheels",
            "wheels": [f.path for f in wheels],
            "wheel_target": _WHEEL_TARGET,
            "compile_python": True,
        }] if wheels else []) + [
            {"name": "app", "files": app_files, "compile_python": True},
        ],
        "config": config,
    }
    spec_file = ctx.actions.declare_file(ctx.label.name + ".spec.json")
    ctx.actions.write(spec_file, json.encode(spec))
    tarball = ctx.actions.declare_file(ctx.label.name + ".tar")
    digest = ctx.actions.declare_file(ctx.label.name + ".digest")
    inputs = depset(
        [spec_file] + debs + wheels + extra_files,
        transitive = [program_files, third_party_files],
    )
    ctx.actions.run(
        executable = ctx.executable._builder,
        arguments = ["--spec", spec_file.path, "--out", tarball.path, "--digest", digest.path],
        inputs = inputs,
        outputs = [tarball, digest],
        env = {"PYTHONHASHSEED": "0"},
        mnemonic = "OciImage",
        progress_message = "Writing OCI image %s" % ctx.attr.tag,
    )
    launcher = ctx.actions.declare_file(ctx.label.name + ".load.sh")
    ctx.actions.write(launcher, _LAUNCHER.format(
        loader = ctx.executable._loader.short_path,
        images = _load_args([OciImageInfo(tarball = tarball, tag = ctx.attr.tag)]),
        tag = ctx.attr.tag,
    ), is_executable = True)
    runfiles = ctx.runfiles(files = [tarball]).merge(ctx.attr._loader[DefaultInfo].default_runfiles)
    return [
        DefaultInfo(files = depset([tarball, digest]), executable = launcher, runfiles = runfiles),
        OutputGroupInfo(
            digest = depset([digest]),
            spec = depset([spec_file]),
            tarball = depset([tarball]),
            # What the builder read: the spec and every input it names (the reproducibility test
            # rebuilds the image from these).
            image_inputs = inputs,
        ),
        OciImageInfo(tarball = tarball, tag = ctx.attr.tag),
    ]

def _short(f):
    return f.short_path

_LAUNCHER = """#!/bin/sh
# Loads {tag} into Docker (when its daemon answers) or podman, then prints the tag.
set -e
exec "./{loader}" {images} "$@"
"""

def _load_args(images):
    return " ".join([
        "--tarball \"./%s\" --tag \"%s\"" % (i.tarball.short_path, i.tag)
        for i in images
    ])

_oci_image = rule(
    implementation = _oci_image_impl,
    executable = True,
    attrs = {
        "binary": attr.label(doc = "py_binary or py_library whose runfiles make the image."),
        "third_party": attr.label(
            doc = "py_library whose @pypi runfiles alone make the third-party layer (no binary).",
        ),
        "wheels": attr.label_list(
            allow_files = [".whl"],
            doc = "Pure-Python wheels installed, with their console scripts, in a layer of their own.",
        ),
        "files": attr.label_keyed_string_dict(
            allow_files = True,
            doc = "{file: image path} added to the app layer (configuration files).",
        ),
        "module": attr.string(doc = "Module run with `python3.11 -m`."),
        "entrypoint": attr.string_list(doc = "Entrypoint when `module` is empty."),
        "cmd": attr.string_list(),
        "workdir": attr.string(default = _APP_ROOT),
        "tag": attr.string(mandatory = True),
        "env": attr.string_dict(),
        "ports": attr.string_list(),
        "labels": attr.string_dict(),
        "healthcheck": attr.string_list(doc = "Docker HEALTHCHECK test, e.g. ['CMD', ...]."),
        "symlinks": attr.string_dict(doc = "{image path: target} added to the base layer."),
        "directories": attr.string_dict(doc = "{image path: owner} ('root' or 'nonroot')."),
        "base": attr.label_list(allow_files = [".deb"], default = ["@debian_python//:debs"]),
        "_builder": attr.label(default = "//tools/oci:build", executable = True, cfg = "exec"),
        "_loader": attr.label(default = "//tools/oci:load", executable = True, cfg = "target"),
    },
)

def http_healthcheck(port_env, default_port, path = "/healthz"):
    """An exec-form HEALTHCHECK that GETs `path` on the service's own port (no shell needed).

    Args:
      port_env: the environment variable holding the port (e.g. "API_PORT").
      default_port: the port when that variable is unset.
      path: the health endpoint.
    Returns:
      the `healthcheck` attribute of `oci_image`.
    """
    probe = (
        "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + " +
        "os.environ.get('%s', '%s') + '%s', timeout=4)" % (port_env, default_port, path)
    )
    return ["CMD", "/usr/bin/python3.11", "-c", probe]

def oci_image(name, tag, binary = None, module = "", **kwargs):
    """An OCI image of a Python program; `bazel run` loads it, `bazel build` writes `<name>.tar`.

    Also creates its push target, `push` for an image named `image` (else `<name>_push`):
    `bazel run //api:push -- --repository registry.example.com/conveyor/api --tag 1.2.0`.

    Args:
      name: target name (by convention `image`).
      binary: the py_binary (or py_library) whose runfiles make the image; None for an image
        of Debian packages only (the brokers).
      tag: the image reference loaded by `bazel run`, e.g. `conveyor/api:dev`.
      module: the module the image runs (`python3.11 -m <module>`).
      **kwargs: `files`, `workdir`, `env`, `ports`, `labels`, `healthcheck`, `cmd`, `entrypoint`,
        `wheels` (pure-Python wheels installed into site-packages, console scripts in
        /usr/local/bin) with `third_party` (a py_library whose @pypi runfiles are their
        dependencies; instead of `binary`),
        `base` (a list of `.deb` targets; default `@debian_python//:debs`), `symlinks`,
        `directories` ({path: 'root' | 'nonroot'}), and the common attributes.
    """
    _oci_image(name = name, binary = binary, tag = tag, module = module, **kwargs)
    oci_push(
        name = "push" if name == "image" else name + "_push",
        images = [":" + name],
        tags = kwargs.get("tags"),
        testonly = kwargs.get("testonly"),
        visibility = kwargs.get("visibility"),
    )

def _oci_images_impl(ctx):
    images = [image[OciImageInfo] for image in ctx.attr.images]
    launcher = ctx.actions.declare_file(ctx.label.name + ".load.sh")
    ctx.actions.write(launcher, _LAUNCHER.format(
        loader = ctx.executable._loader.short_path,
        images = _load_args(images),
        tag = ", ".join([i.tag for i in images]),
    ), is_executable = True)
    tarballs = [i.tarball for i in images]
    runfiles = ctx.runfiles(files = tarballs).merge(ctx.attr._loader[DefaultInfo].default_runfiles)
    return [
        DefaultInfo(files = depset(tarballs), executable = launcher, runfiles = runfiles),
        # `$(rootpaths)` of an executable target names only its launcher: a filegroup with
        # `output_group = "tarballs"` (or "digests", "specs", "image_inputs") gives the files themselves.
        OutputGroupInfo(
            tarballs = depset(tarballs),
            digests = depset(transitive = [i[OutputGroupInfo].digest for i in ctx.attr.images]),
            specs = depset(transitive = [i[OutputGroupInfo].spec for i in ctx.attr.images]),
            image_inputs = depset(
                transitive = [i[OutputGroupInfo].image_inputs for i in ctx.attr.images],
            ),
        ),
    ]

oci_images = rule(
    implementation = _oci_images_impl,
    executable = True,
    attrs = {
        "images": attr.label_list(providers = [OciImageInfo], mandatory = True),
        "_loader": attr.label(default = "//tools/oci:load", executable = True, cfg = "target"),
    },
    doc = "Several oci_image targets: `bazel build` writes them all, `bazel run` loads them all.",
)

_PUSH_LAUNCHER = """#!/bin/sh
# Pushes {tags} to the registry given by --repository/--registry or CONVEYOR_PUSH_* (tools/oci/push.py).
set -e
exec "./{pusher}" {images} "$@"
"""

def _repository_path(tag):
    """`conveyor/api:dev` -> `conveyor/api` (the path the image gets under a registry)."""
    return tag.rpartition(":")[0] if ":" in tag.rpartition("/")[2] else tag

def _oci_push_impl(ctx):
    images = [image[OciImageInfo] for image in ctx.attr.images]
    launcher = ctx.actions.declare_file(ctx.label.name + ".push.sh")
    ctx.actions.write(launcher, _PUSH_LAUNCHER.format(
        pusher = ctx.executable._pusher.short_path,
        images = " ".join([
            "--tarball \"./%s\" --name \"%s\"" % (i.tarball.short_path, _repository_path(i.tag))
            for i in images
        ]),
        tags = ", ".join([i.tag for i in images]),
    ), is_executable = True)
    runfiles = ctx.runfiles(files = [i.tarball for i in images])
    runfiles = runfiles.merge(ctx.attr._pusher[DefaultInfo].default_runfiles)
    return [DefaultInfo(executable = launcher, runfiles = runfiles)]

oci_push = rule(
    implementation = _oci_push_impl,
    executable = True,
    attrs = {
        "images": attr.label_list(providers = [OciImageInfo], mandatory = True),
        "_pusher": attr.label(default = "//tools/oci:push", executable = True, cfg = "target"),
    },
    doc = """`bazel run` pushes the images to a registry and prints `repo@sha256:...` for each.

    One image: `-- --repository registry.example.com/conveyor/api --tag 1.2.0`. Several: each goes
    to `<registry>/<its local name>` (`-- --registry registry.example.com --tag 1.2.0`).
    Environment: CONVEYOR_PUSH_REPOSITORY, CONVEYOR_PUSH_REGISTRY, CONVEYOR_PUSH_TAG,
    CONVEYOR_PUSH_INSECURE; credentials from CONVEYOR_PUSH_USERNAME/PASSWORD or a docker/podman
    auth file (tools/oci/credentials.py).
    """,
)
