"""Without a redis-server binary, the launcher runs the conveyor/redis:dev image instead."""

import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tools.oci.engine import detect_engine
from tools.oci.load import load_image
from tools.up import brokers
from tools.up.containers import BROKER_IMAGES


def _ping(url: str) -> bytes:
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as conn:
        conn.sendall(b"PING\r\n")
        return conn.recv(64)


def test_redis_from_the_broker_image(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    engine = detect_engine()
    if engine is None:
        if os.environ.get("CI") or os.environ.get("CONVEYOR_REQUIRE_CONTAINERS"):
            pytest.fail("no container engine (Docker daemon or podman) here, and CI needs one")
        pytest.skip("no container engine (Docker daemon or podman): nothing to run images in")
    load_image(engine, Path(os.environ["CONVEYOR_REDIS_TARBALL"]), BROKER_IMAGES["redis"])
    monkeypatch.setattr(brokers, "REDIS_CANDIDATES", ("no-such-redis-server-binary",))
    broker = brokers.start_redis("redis://127.0.0.1:1/0", tmp_path)
    try:
        assert broker.container is not None
        assert broker.url.startswith("redis://127.0.0.1:")
        assert _ping(broker.url).startswith(b"+PONG")
    finally:
        brokers.stop([broker])
    assert broker.container is not None
    gone = engine.run("container", "inspect", broker.container.name, check=False)
    assert gone.returncode != 0, "the broker container outlived stop()"
    networks = engine.run("network", "ls", "--format", "{{.Name}}").stdout.split()
    assert broker.container.name not in networks, "its network outlived stop()"
