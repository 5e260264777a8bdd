"""Private brokers from Conveyor's broker images, for machines without broker binaries.

``bazel run //:images`` loads ``conveyor/rabbitmq:dev`` and ``conveyor/redis:dev`` (built from
Debian packages) into Docker or podman; the launcher runs one on a free loopback port when no
broker answers at the configured URL and no local binary exists.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

from tools.oci.engine import Engine, detect_engine

BROKER_IMAGES = {"rabbitmq": "conveyor/rabbitmq:dev", "redis": "conveyor/redis:dev"}
CONTAINER_PORTS = {"rabbitmq": 5672, "redis": 6379}


@dataclass(frozen=True)
class BrokerContainer:
    """A broker container this launcher started, on a network of its own (same name)."""

    engine: Engine
    name: str

    def stop(self) -> None:
        """Remove the container (and with it its anonymous volumes), then its network."""
        self.engine.run("rm", "--force", "--volumes", self.name, check=False, timeout=120)
        self.engine.run("network", "rm", "--force", self.name, check=False, timeout=60)


def image_available(engine: Engine, image: str) -> bool:
    """True when ``image`` is in the engine's local store (nothing is ever pulled)."""
    return engine.run("image", "inspect", image, check=False, timeout=60).returncode == 0


def find_engine_with(kind: str) -> Engine | None:
    """The container engine holding the broker image of ``kind``, or None."""
    engine = detect_engine()
    if engine is None or not image_available(engine, BROKER_IMAGES[kind]):
        return None
    return engine


def run_broker(engine: Engine, kind: str, host_port: int) -> BrokerContainer:
    """Start the broker image of ``kind`` publishing its port on 127.0.0.1:``host_port``."""
    name = f"conveyor-up-{kind}-{host_port}"
    container = BrokerContainer(engine, name)
    try:
        # A network of its own: podman's default network may not forward loopback ports.
        engine.run("network", "create", name, timeout=60)
        engine.run(
            "run", "--detach", "--rm", "--name", name, "--network", name,
            "--publish", f"127.0.0.1:{host_port}:{CONTAINER_PORTS[kind]}",
            "--pull", "never",
            BROKER_IMAGES[kind],
            timeout=300,
        )  # fmt: skip
    except subprocess.CalledProcessError as e:
        container.stop()
        raise RuntimeError(
            f"{engine.name} could not start {BROKER_IMAGES[kind]}: {e.stderr}"
        ) from e
    return container
