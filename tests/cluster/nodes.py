"""Private broker processes for failover tests: a RabbitMQ cluster of local nodes, and Redis.

Every node has its own name, ports, data and log directories under one temporary directory, so
the host's RabbitMQ (``rabbit@<host>``) and Redis are never touched. ``close()`` stops every
process started here and removes the directory.
"""

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from tools.stack.brokers import find_binary, local_command
from tools.stack.ports import LOOPBACK, answers, free_port
from tools.stack.process import Service

RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
START_TIMEOUT = 120.0


@dataclass
class RabbitNode:
    """One RabbitMQ node: its Erlang name, AMQP port and process."""

    name: str
    port: int
    base: Path
    env: dict[str, str]
    process: Service | None = None

    @property
    def url(self) -> str:
        """The AMQP URL of this node."""
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    @property
    def alive(self) -> bool:
        """True while the node's process runs."""
        return self.process is not None and self.process.alive()

    def kill(self) -> None:
        """SIGKILL the node (its whole process group: the Erlang VM and its helpers)."""
        if self.process is not None:
            self.process.kill(30)


@dataclass
class RabbitCluster:
    """``size`` RabbitMQ nodes on this machine, joined into one cluster."""

    size: int = 3
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="conveyor-cluster-")))
    nodes: list[RabbitNode] = field(default_factory=list)

    def start(self) -> "RabbitCluster":
        """Start the nodes (in parallel), wait for them, join them to the first one."""
        if not (RABBITMQ_BIN / "rabbitmq-server").exists():
            raise RuntimeError("Debian's rabbitmq-server is not installed")
        home = self.root / "home"  # a shared Erlang cookie: $HOME/.erlang.cookie
        home.mkdir()
        cookie = home / ".erlang.cookie"
        cookie.write_text(uuid.uuid4().hex)
        cookie.chmod(0o400)
        try:
            for index in range(self.size):
                self.nodes.append(self._start_node(index, home))
            for node in self.nodes:
                self._await_startup(node)
            for node in self.nodes[1:]:
                self.ctl(node, "stop_app")
                self.ctl(node, "join_cluster", self.nodes[0].name)
                self.ctl(node, "start_app")
        except BaseException:
            self.close()
            raise
        return self

    @property
    def amqp_url(self) -> str:
        """``AMQP_URL`` naming every node, comma-separated."""
        return ",".join(node.url for node in self.nodes)

    def ctl(self, node: RabbitNode, *args: str, tool: str = "rabbitmqctl") -> str:
        """Run ``rabbitmqctl -n <node> args`` (or another CLI ``tool``); return its output."""
        result = subprocess.run(
            [str(RABBITMQ_BIN / tool), "-n", node.name, *args],
            env=node.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{tool} {' '.join(args)} on {node.name}: {result.stderr}")
        return result.stdout

    def leader(self, queue: str) -> RabbitNode:
        """The node that leads the quorum queue ``queue``, asked of a live node."""
        asker = next(node for node in self.nodes if node.alive)
        output = self.ctl(asker, "list_queues", "name", "leader", "--no-table-headers", "-q")
        for line in output.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == queue:
                return next(node for node in self.nodes if node.name == parts[1])
        raise LookupError(f"{queue} not found on the cluster:\n{output}")

    def _start_node(self, index: int, home: Path) -> RabbitNode:
        port, dist_port = free_port(), free_port()
        base = self.root / f"node{index}"
        base.mkdir()
        (base / "rabbitmq.conf").write_text("loopback_users = none\n")
        name = f"conveyor-{self.tag}-{index}@localhost"
        binary = str(RABBITMQ_BIN / "rabbitmq-server")
        argv, own = local_command(
            "rabbitmq", binary, port, base, node_name=name, dist_port=dist_port
        )
        # One $HOME for every node: they share its Erlang cookie.
        env = {**os.environ, **own, "HOME": str(home)}
        node = RabbitNode(name, port, base, env)
        node.process = Service("rabbitmq-server", env, base, "server", argv=argv)
        return node

    def _await_startup(self, node: RabbitNode) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not answers(LOOPBACK, node.port):
            if not node.alive or time.monotonic() > deadline:
                log = node.process.log() if node.process is not None else ""
                raise RuntimeError(f"{node.name} did not start:\n{log[-3000:]}")
            time.sleep(0.5)
        self.ctl(node, "await_startup", "--timeout", str(int(START_TIMEOUT)))

    def close(self) -> None:
        """Stop every node and remove the data directories."""
        for node in self.nodes:
            node.kill()
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class RedisServer:
    """A private redis-server (no persistence) on a free port; optionally a replica of another."""

    root: Path
    replica_of: int | None = None
    port: int = field(default_factory=free_port)
    process: Service | None = None

    @property
    def url(self) -> str:
        """The Redis URL of this server."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, *extra: str) -> "RedisServer":
        """Start the server and wait until it accepts connections."""
        directory = self.root / f"redis-{self.port}"
        directory.mkdir(parents=True, exist_ok=True)
        if self.replica_of is not None:
            extra = (*extra, "--replicaof", "127.0.0.1", str(self.replica_of))
        command, _ = local_command(
            "redis", find_binary("redis"), self.port, directory, redis_args=extra
        )
        self.process = Service("redis-server", {}, directory, "server", argv=command)
        deadline = time.monotonic() + 30
        while not answers(LOOPBACK, self.port):
            if not self.process.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on {self.port} did not start")
            time.sleep(0.1)
        return self

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the server (SIGSTOP: it stays connected but answers nothing)."""
        if self.process is not None:
            self.process.signal(signum)

    def kill(self) -> None:
        """SIGKILL the server."""
        if self.process is not None:
            self.process.kill(10)
