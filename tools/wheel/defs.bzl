"""`py_wheel`: a reproducible pure-Python wheel (`py3-none-any`) of first-party py_libraries.

The wheel holds every first-party Python file (sources and generated `_pb2.py` modules) that the
`deps` need, under the chosen top-level `packages` (anything else the deps pull in is left out,
third-party code included); third-party dependencies become `Requires-Dist` ranges derived from
`requirements.lock` by `//tools/wheel:build_wheel` (see its docstring), those of an extra
marked with it (`extras`). The archive has fixed
timestamps and sorted entries: the same bytes on every build.
"""

_BUILDER = "//tools/wheel:build_wheel"
_LOCK = "//:requirements.lock"

def _py_wheel_impl(ctx):
    dist = ctx.attr.distribution.replace("-", "_")
    out = ctx.actions.declare_file("%s-%s-py3-none-any.whl" % (dist, ctx.attr.version))
    roots = ctx.attr.packages
    files = {}
    for dep in ctx.attr.deps:
        for src in dep[PyInfo].transitive_sources.to_list():
            if src.owner.workspace_name != "":
                continue
            if src.short_path.split("/")[0] not in roots:
                continue
            files[src.short_path] = src
    for src in ctx.files.data:
        files[src.short_path] = src
    if not files:
        fail("py_wheel %s: no file of %s under %s" % (ctx.label, ctx.attr.deps, roots))
    args = ctx.actions.args()
    args.use_param_file("@%s", use_always = True)
    args.set_param_file_format("multiline")
    args.add("--out", out)
    args.add("--name", ctx.attr.distribution)
    args.add("--version", ctx.attr.version)
    args.add("--summary", ctx.attr.summary)
    args.add("--lock", ctx.file._lock)
    for req in ctx.attr.requires:
        args.add("--requires", req)
    for extra, reqs in sorted(ctx.attr.extras.items()):
        for req in reqs:
            args.add("--extra-requires", "%s=%s" % (extra, req))
    for script, target in sorted(ctx.attr.console_scripts.items()):
        args.add("--entry-point", "%s=%s" % (script, target))
    for path in sorted(files):
        args.add("--file", "%s=%s" % (path, files[path].path))
    ctx.actions.run(
        executable = ctx.executable._builder,
        arguments = [args],
        inputs = [ctx.file._lock] + [files[p] for p in sorted(files)],
        outputs = [out],
        mnemonic = "PyWheel",
        progress_message = "Building wheel %s" % out.short_path,
    )
    return [DefaultInfo(files = depset([out]), runfiles = ctx.runfiles(files = [out]))]

py_wheel = rule(
    implementation = _py_wheel_impl,
    attrs = {
        "distribution": attr.string(mandatory = True, doc = "The distribution name, e.g. conveyor-worker."),
        "version": attr.string(mandatory = True, doc = "The wheel's version (PEP 440)."),
        "summary": attr.string(mandatory = True, doc = "One line for METADATA's Summary."),
        "deps": attr.label_list(providers = [PyInfo], mandatory = True, doc = "The py_libraries to ship."),
        "data": attr.label_list(allow_files = True, doc = "Extra files (e.g. py.typed), at their workspace paths."),
        "packages": attr.string_list(mandatory = True, doc = "Top-level directories whose files are shipped."),
        "requires": attr.string_list(doc = "Distributions required: `name` (range from the lock) or `name:>=1,<2`."),
        "extras": attr.string_list_dict(doc = "Extra name to the distributions it adds, as in `requires` (`pip install 'dist[extra]'`)."),
        "console_scripts": attr.string_dict(doc = "Console script name to `module:function`."),
        "_builder": attr.label(default = _BUILDER, executable = True, cfg = "host"),
        "_lock": attr.label(default = _LOCK, allow_single_file = True),
    },
    doc = "A reproducible py3-none-any wheel of first-party Python (see the module doc).",
)
