"""Broker containers from Conveyor's own images (built by Bazel from Debian packages).

``bazel run //:images`` loads ``conveyor/rabbitmq:dev`` and ``conveyor/redis:dev``; tests get
the image tarballs as data and load them here (:func:`load_broker_images`). Nothing is ever
pulled. Every container gets a network of its own (podman's default network may not forward
loopback ports) and both are removed by :meth:`BrokerContainer.stop`.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tools.oci.engine import Engine, detect_engine
from tools.oci.load import image_id, load_image

__all__ = [
    "BROKER_IMAGES",
    "CONTAINER_PORTS",
    "BrokerContainer",
    "find_engine_with",
    "image_available",
    "load_broker_images",
    "run_broker",
]

BROKER_IMAGES = {"rabbitmq": "conveyor/rabbitmq:dev", "redis": "conveyor/redis:dev"}
CONTAINER_PORTS = {"rabbitmq": 5672, "redis": 6379}


@dataclass(frozen=True)
class BrokerContainer:
    """A broker container we started, on a network of its own (same name)."""

    engine: Engine
    name: str

    def stop(self) -> None:
        """Remove the container (and with it its anonymous volumes), then its network."""
        self.engine.run("rm", "--force", "--volumes", "--time", "5", self.name, check=False,
                        timeout=120)  # fmt: skip
        self.engine.run("network", "rm", "--force", self.name, check=False, timeout=60)


def image_available(engine: Engine, image: str) -> bool:
    """True when ``image`` (a tag or an ID) is in the engine's local store."""
    return engine.run("image", "inspect", image, check=False, timeout=60).returncode == 0


def load_broker_images(engine: Engine, tarballs: Iterable[Path]) -> None:
    """Load the broker image tarballs, skipping those whose image ID the engine already holds."""
    for tarball in tarballs:
        kind = "rabbitmq" if "rabbitmq" in tarball.name else "redis"
        wanted = image_id(tarball)
        if image_available(engine, wanted):
            engine.run("tag", wanted, BROKER_IMAGES[kind], timeout=60)
        else:
            load_image(engine, tarball, BROKER_IMAGES[kind])


def find_engine_with(kind: str) -> Engine | None:
    """The container engine holding the broker image of ``kind``, or None."""
    engine = detect_engine()
    if engine is None or not image_available(engine, BROKER_IMAGES[kind]):
        return None
    return engine


def run_broker(engine: Engine, kind: str, host_port: int, label: str = "up") -> BrokerContainer:
    """Start the broker image of ``kind`` publishing its port on 127.0.0.1:``host_port``."""
    name = f"conveyor-{label}-{kind}-{host_port}"
    container = BrokerContainer(engine, name)
    try:
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
