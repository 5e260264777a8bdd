"""Redis with Sentinel loses its primary under load: no result is lost.

A private primary, one replica and three sentinels run locally; a Conveyor stack (on the
brokers' RabbitMQ from ``AMQP_URL``) reaches Redis only through the sentinels. Its workers keep
the default ``REDIS_WAIT_REPLICAS=auto``, so with the replica connected they ``WAIT`` for it
before acknowledging a task. Under async load the primary is SIGKILLed; every accepted task
must end with its own result, read through the promoted replica.
"""

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.cluster.load import answers, poll_all, run_load
from tests.cluster.nodes import RedisServer
from tests.integration.stack import Stack, wait_until
from tools.stack.ports import free_port
from tools.stack.process import Service

MASTER = "conveyor"
LOAD_SECONDS = 20.0
KILL_AT = 6.0
RATE = 15.0


class Sentinels:
    """A primary, a replica and three sentinels watching the primary as ``MASTER``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.primary = RedisServer(root).start()
        self.replica = RedisServer(root, replica_of=self.primary.port).start()
        self.ports = [free_port() for _ in range(3)]
        self.processes: list[Service] = []
        for port in self.ports:
            config = root / f"sentinel-{port}.conf"
            config.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {root}\n"
                f"sentinel monitor {MASTER} 127.0.0.1 {self.primary.port} 2\n"
                f"sentinel down-after-milliseconds {MASTER} 1000\n"
                f"sentinel failover-timeout {MASTER} 10000\n"
                f"sentinel parallel-syncs {MASTER} 1\n"
            )
            argv = ["redis-server", str(config), "--sentinel"]
            self.processes.append(Service("sentinel", {}, root, f"sentinel-{port}", argv=argv))
        wait_until(self._replicated, 30.0, what="replica in sync")
        wait_until(lambda: all(self.master_port(p) for p in self.ports), 30.0, what="sentinels")

    @property
    def setting(self) -> str:
        """``REDIS_SENTINELS`` for these sentinels."""
        return ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def master_port(self, sentinel_port: int) -> int | None:
        """The primary's port as the sentinel on ``sentinel_port`` reports it."""
        client = redis.Redis(port=sentinel_port, socket_timeout=2)
        try:
            address = client.execute_command("SENTINEL", "get-master-addr-by-name", MASTER)
        except redis.RedisError:
            return None
        finally:
            client.close()
        return int(address[1]) if address else None

    def _replicated(self) -> bool:
        client = redis.Redis(port=self.primary.port)
        try:
            return int(client.info("replication")["connected_slaves"]) >= 1
        finally:
            client.close()

    def close(self) -> None:
        """Stop the sentinels and both servers."""
        for process in self.processes:
            process.kill(10)
        self.primary.kill()
        self.replica.kill()


@pytest.fixture(scope="module")
def sentinels(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sentinels]:
    setup = Sentinels(tmp_path_factory.mktemp("sentinel"))
    try:
        yield setup
    finally:
        setup.close()


@pytest.fixture(scope="module")
def stack(sentinels: Sentinels) -> Iterator[Stack]:
    sentinel_env = {
        "REDIS_SENTINELS": sentinels.setting,
        "REDIS_MASTER_NAME": MASTER,
        # REDIS_WAIT_REPLICAS is left at its default, auto: the default must lose nothing.
        "REDIS_WAIT_TIMEOUT_MS": "500",
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in sentinel_env.items():
            patch.setenv(name, value)
        patch.setenv("REDIS_URL", sentinels.primary.url)
        stack = Stack(RESULT_TTL="600")
        try:
            yield stack
        finally:
            # Clean-up deletes keys on whichever server is the primary now.
            stack.redis_url = sentinels.replica.url
            stack.close()


def test_killing_the_primary_loses_no_result(
    sentinels: Sentinels, stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    # model_a keeps nothing in Redis itself (the slow test model counts its runs there).
    model = stack.model_name("model_a")
    stack.start_worker("models.model_a", model, WORKER_CONCURRENCY="8")
    stack.start_worker("models.model_a", model, WORKER_CONCURRENCY="8")

    waits: list[int] = []

    def kill_primary() -> None:
        # The workers left REDIS_WAIT_REPLICAS at auto: seeing the replica, they sent WAIT.
        with redis.Redis(port=sentinels.primary.port) as primary:
            stats = primary.info("commandstats")
        waits.append(int(stats.get("cmdstat_wait", {}).get("calls", 0)))
        sentinels.primary.kill()

    record = run_load([stack.api_url], model, LOAD_SECONDS, RATE, KILL_AT, kill_primary)
    promoted = wait_until(
        lambda: sentinels.master_port(sentinels.ports[0]) == sentinels.replica.port,
        30.0,
        what="replica promoted",
    )
    accepted = record.accepted
    statuses = poll_all([stack.api_url], accepted, timeout=90.0)
    done = [s for s in accepted if statuses.get(s.task_id or "", {}).get("status") == "done"]
    lost = [s.tag for s in accepted if s not in done]
    wrong = [
        s.tag for s in done if not answers(str(statuses[s.task_id or ""].get("result")), s.tag)
    ]
    refused = [s for s in record.submissions if s.status != 202]
    resumed = record.first_after_disruption()
    with capsys.disabled():
        print(
            f"\nredis failover: killed the primary at t={KILL_AT:g}s, replica promoted "
            f"({promoted}); async submitted {len(record.submissions)}, accepted "
            f"{len(accepted)}, refused {len(refused)} {sorted({s.status for s in refused})}, "
            f"done {len(done)}, lost {len(lost)}, wrong {len(wrong)}; sync probes "
            f"{len(record.probes)}, failed {sum(1 for p in record.probes if not p.ok)}; "
            f"WAIT calls before the kill {waits}; serving resumed after "
            f"{None if resumed is None else round(resumed, 2)} s"
        )
    assert len(accepted) > RATE * KILL_AT / 2
    assert waits and waits[0] > 0, "the workers never sent WAIT to a primary with a replica"
    assert lost == [], f"{len(lost)} accepted tasks lost their result: {lost[:10]}"
    assert wrong == []
    assert os.environ.get("REDIS_SENTINELS") == sentinels.setting
    assert resumed is not None
    assert time.monotonic() > record.disrupted_at
