"""Runs the services of ``tools.stack.services.SERVICES`` in a container engine on a private
network, publishing what ``docker-compose.yml`` publishes (on free host ports)."""

from __future__ import annotations

import json
import tarfile
import uuid
from functools import partial
from pathlib import Path

from tools.oci.engine import Engine
from tools.oci.load import load_image
from tools.stack.services import COMPOSE_ENDPOINTS, SERVICES, Service
from tools.stack.waiting import wait_until

__all__ = ["Stack", "image_tag"]


def image_tag(tarball: Path) -> str:
    """Returns the tag recorded in an image tarball's ``index.json``."""
    with tarfile.open(tarball) as tar:
        index = tar.extractfile("index.json")
        assert index is not None
        manifest = json.load(index)["manifests"][0]
    return str(manifest["annotations"]["io.containerd.image.name"])


class Stack:
    """The services under unique names (``cvt-<id>-<service>``) on a network of their own."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.prefix = f"cvt-{uuid.uuid4().hex[:8]}"
        self.network = f"{self.prefix}-net"
        self.last_health: dict[str, str] = {}
        self._volumes_before = self._volumes()

    def _volumes(self) -> set[str]:
        result = self.engine.run("volume", "ls", "--format", "{{.Name}}", check=False)
        return set(result.stdout.split())

    def container(self, service: str) -> str:
        """The container name of ``service``."""
        return f"{self.prefix}-{service}"

    def load(self, tarballs: list[Path]) -> None:
        """Loads the image tarballs into the engine."""
        for tarball in tarballs:
            load_image(self.engine, tarball, image_tag(tarball))

    def up(self, health_timeout: float = 240) -> None:
        """Starts every service in order, each once its dependencies pass their healthcheck."""
        self.engine.run("network", "create", self.network)
        by_name = {service.name: service for service in SERVICES}
        healthy: set[str] = set()
        for service in SERVICES:
            for dependency in service.depends_on:
                if dependency not in healthy:
                    check = partial(self.healthy, by_name[dependency])
                    wait_until(check, health_timeout, 1.0, f"{dependency} healthy")
                    healthy.add(dependency)
            self._start(service)
        for service in SERVICES:
            wait_until(
                partial(self.healthy, service), health_timeout, 1.0, f"{service.name} healthy"
            )

    def _start(self, service: Service) -> None:
        args = ["run", "-d", "--name", self.container(service.name), "--network", self.network]
        args += ["--network-alias", service.name]
        for key, value in sorted(service.environment(COMPOSE_ENDPOINTS).items()):
            args += ["-e", f"{key}={value}"]
        for port in service.ports:
            if port.publish:
                args += ["-p", f"127.0.0.1::{port.container}"]
        self.engine.run(*args, service.image)

    def healthy(self, service: Service) -> bool:
        """Runs the service's healthcheck command in its container."""
        result = self.engine.run(
            "exec", self.container(service.name), *service.healthcheck[1:], check=False, timeout=60
        )
        self.last_health[service.name] = f"rc={result.returncode} {result.stdout}{result.stderr}"
        return result.returncode == 0

    def published(self, service: str) -> dict[int, int]:
        """The container ports of ``service`` published on the host, and their host ports."""
        out = self.engine.run("port", self.container(service), check=False).stdout
        ports = {}
        for line in out.splitlines():  # "8000/tcp -> 127.0.0.1:40123"
            inner, _, outer = line.partition(" -> ")
            if outer:
                ports[int(inner.split("/")[0])] = int(outer.rsplit(":", 1)[1])
        return ports

    def api_url(self) -> str:
        """The host URL of the gateway's published port."""
        return f"http://127.0.0.1:{self.published('api')[8000]}"

    def logs(self) -> str:
        """The last lines of every container's log (for failure messages)."""
        parts = []
        for service in SERVICES:
            result = self.engine.run(
                "logs", "--tail", "30", self.container(service.name), check=False
            )
            health = self.last_health.get(service.name, "not run")
            parts.append(
                f"--- {service.name} (last healthcheck: {health.strip()})\n"
                f"{result.stdout}{result.stderr}"
            )
        return "\n".join(parts)

    def down(self) -> list[str]:
        """Removes the containers, their volumes and the network; returns what is left over.

        Left over: containers or networks named with this stack's prefix, and volumes that did
        not exist when the stack was created.
        """
        names = [self.container(service.name) for service in SERVICES]
        self.engine.run("rm", "-f", "-v", "-t", "5", *names, check=False, timeout=300)
        self.engine.run("network", "rm", "-f", self.network, check=False)
        left = self.engine.run("ps", "-a", "--format", "{{.Names}}", check=False).stdout.split()
        networks = self.engine.run("network", "ls", "--format", "{{.Name}}", check=False)
        left += networks.stdout.split()
        leftovers = [name for name in left if name.startswith(self.prefix)]
        return leftovers + sorted(self._volumes() - self._volumes_before)
