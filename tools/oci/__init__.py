"""Conveyor's OCI image tool: deterministic image layout tarballs from Debian packages and files.

Modules: ``tree`` (layer contents), ``deb`` (reading ``.deb`` files), ``pyc`` (bytecode),
``rootfs`` (generated users and directories), ``tarlayer`` (deterministic gzip layers),
``layout`` (OCI layout + Docker ``manifest.json``), ``spec`` (the JSON input), ``build`` (CLI),
``load`` (loading into Docker or podman), ``credentials`` (repository names and registry
credentials), ``distribution`` (the registry HTTP API v2 client), ``push`` (CLI).
"""
