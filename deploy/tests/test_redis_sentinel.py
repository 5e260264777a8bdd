"""Redis with Sentinel as deploy/k8s/base/redis.yaml runs it, in podman (or Docker): the start-up
and readiness scripts of ``deploy/k8s/base/redis/`` in the Redis image, two Redis and three
sentinels on a private network, each named and aliased as its pod would be
(``redis-0.redis-headless``, ``redis-sentinel-0.redis-sentinel-headless``), read-only root,
user 65532, no capabilities.

Checks: redis-0 starts as master and redis-1 as its replica; frozen, redis-0 is failed over from
and redis-1's readiness script passes; resumed, redis-0 becomes redis-1's replica and gets the
writes made meanwhile. Skipped without a container engine unless ``CI`` or
``CONVEYOR_REQUIRE_CONTAINERS`` is set.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tools.oci.engine import Engine, detect_engine
from tools.oci.load import image_id

SCRIPTS = Path(__file__).resolve().parent.parent / "k8s" / "base" / "redis"
NONROOT = "65532:65532"
REDIS_0 = "redis-0.redis-headless"
REDIS_1 = "redis-1.redis-headless"


def _wait(what: str, check: Callable[[], bool], timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class Cluster:
    """Five containers on a network of their own; names prefixed with a unique id."""

    def __init__(self, engine: Engine, image: str, workdir: Path) -> None:
        self.engine = engine
        self.image = image
        self.workdir = workdir
        self.prefix = f"cvs-{uuid.uuid4().hex[:8]}"
        self.network = f"{self.prefix}-net"
        self.scripts = workdir / "scripts"
        shutil.copytree(SCRIPTS, self.scripts)  # real files: runfiles are symlinks

    def container(self, pod: str) -> str:
        return f"{self.prefix}-{pod}"

    def start(self, pod: str, headless: str, script: str) -> None:
        data = self.workdir / pod
        data.mkdir(mode=0o1777)
        data.chmod(0o1777)
        self.engine.run(
            "run", "-d", "--name", self.container(pod), "--network", self.network,
            "--hostname", pod, "--network-alias", f"{pod}.{headless}",
            "--read-only", "--user", NONROOT, "--cap-drop", "ALL",
            "--security-opt", "no-new-privileges",
            "-v", f"{data}:/data", "-v", f"{self.scripts}:/scripts:ro",
            "--entrypoint", "/bin/sh", self.image, f"/scripts/{script}",
        )  # fmt: skip

    def redis_cli(self, pod: str, *args: str) -> str:
        done = self.engine.run("exec", self.container(pod), "redis-cli", *args, check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    def is_master(self, pod: str) -> bool:
        done = self.engine.run(
            "exec", self.container(pod), "/bin/sh", "/scripts/is-master.sh", check=False
        )
        return done.returncode == 0

    def replica_of(self, pod: str, master: str) -> bool:
        info = self.redis_cli(pod, "info", "replication")
        return f"master_host:{master}" in info and "master_link_status:up" in info

    def logs(self) -> str:
        out = []
        for pod in (
            "redis-0",
            "redis-1",
            "redis-sentinel-0",
            "redis-sentinel-1",
            "redis-sentinel-2",
        ):
            done = self.engine.run("logs", self.container(pod), check=False)
            out.append(f"--- {pod}\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
        return "\n".join(out)

    def remove(self) -> list[str]:
        listed = self.engine.run("ps", "-aq", "--filter", f"name={self.prefix}", check=False)
        for container in listed.stdout.split():
            self.engine.run("rm", "-f", "-t", "1", container, check=False)
        self.engine.run("network", "rm", self.network, check=False)
        left = self.engine.run("ps", "-aq", "--filter", f"name={self.prefix}", check=False)
        return left.stdout.split()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    engine = detect_engine()
    if engine is None:
        message = "no container engine: `docker info` fails and podman is not installed"
        if os.environ.get("CI") or os.environ.get("CONVEYOR_REQUIRE_CONTAINERS"):
            pytest.fail(message + " (required here: CI or CONVEYOR_REQUIRE_CONTAINERS is set)")
        pytest.skip(message + " (install podman with tools/podman/setup)")
    paths = [Path(p) for p in os.environ["CONVEYOR_REDIS_IMAGE"].split()]
    (tarball,) = (p for p in paths if p.suffix == ".tar")
    engine.run("load", "-i", str(tarball))
    running = Cluster(engine, image_id(tarball), tmp_path_factory.mktemp("sentinel"))
    engine.run("network", "create", running.network)
    try:
        running.start("redis-0", "redis-headless", "start-redis.sh")
        running.start("redis-1", "redis-headless", "start-redis.sh")
        for i in range(3):
            running.start(f"redis-sentinel-{i}", "redis-sentinel-headless", "start-sentinel.sh")
        yield running
    except Exception:
        print(running.logs())
        raise
    finally:
        assert running.remove() == [], "containers left behind"


def test_failover_and_rejoin(cluster: Cluster) -> None:
    try:

        def replicating() -> bool:
            return cluster.is_master("redis-0") and cluster.replica_of("redis-1", REDIS_0)

        took = _wait("redis-0 master, redis-1 its replica", replicating, 120)
        print(f"replication up after {took:.0f} s")
        assert not cluster.is_master("redis-1")

        def sentinels_agree() -> bool:
            info = cluster.redis_cli(
                "redis-sentinel-0", "-p", "26379", "sentinel", "master", "conveyor"
            )
            lines = info.splitlines()
            return (
                "num-other-sentinels" in lines
                and lines[lines.index("num-other-sentinels") + 1] == "2"
            )

        took = _wait("three sentinels that know each other", sentinels_agree, 120)
        print(f"sentinels agree after {took:.0f} s")
        assert cluster.redis_cli("redis-0", "set", "conveyor:probe", "before") == "OK"
        assert cluster.redis_cli("redis-0", "wait", "1", "5000") == "1"

        cluster.engine.run("pause", cluster.container("redis-0"))
        took = _wait("redis-1 promoted", lambda: cluster.is_master("redis-1"), 120)
        print(f"redis-0 frozen: redis-1 ready as master after {took:.0f} s")
        assert cluster.redis_cli("redis-1", "get", "conveyor:probe") == "before"

        def sentinels_switched() -> bool:
            # The promoted replica answers as master a moment before the sentinels announce it.
            return all(
                cluster.redis_cli(
                    f"redis-sentinel-{i}", "-p", "26379",
                    "sentinel", "get-master-addr-by-name", "conveyor",
                ).split() == [REDIS_1, "6379"]
                for i in range(3)
            )  # fmt: skip

        _wait("every sentinel to name redis-1 the master", sentinels_switched, 60)
        assert cluster.redis_cli("redis-1", "set", "conveyor:probe", "after") == "OK"

        cluster.engine.run("unpause", cluster.container("redis-0"))

        def rejoined() -> bool:
            return cluster.replica_of("redis-0", REDIS_1)

        took = _wait("redis-0 rejoins as redis-1's replica", rejoined, 120)
        print(f"redis-0 resumed: replica of redis-1 after {took:.0f} s")
        assert not cluster.is_master("redis-0")

        def caught_up() -> bool:
            return cluster.redis_cli("redis-0", "get", "conveyor:probe") == "after"

        _wait("the write made meanwhile on redis-0", caught_up, 30)
    except AssertionError:
        print(cluster.logs())
        raise
