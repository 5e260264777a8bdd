"""A 3-node RabbitMQ cluster under load loses the node that leads a model's quorum queue.

Three local nodes (Debian's rabbitmq-server, private names, ports and data) are joined into one
cluster; a Conveyor stack with ``AMQP_URL`` naming all three and a private Redis serves a model
with two workers. Under async load with sync probes, the leader of the model's durable queue is
SIGKILLed. Every accepted task must complete exactly once, and serving must resume; the test
prints how long that took.
"""

from collections.abc import Iterator

import pytest
import redis

from conveyor.protocol import durable_queue
from tests.cluster.load import answers, poll_all, run_load
from tests.cluster.nodes import RabbitCluster, RedisServer
from tests.integration.stack import SLOW_MODEL, Stack

LOAD_SECONDS = 24.0
KILL_AT = 8.0
RATE = 20.0


@pytest.fixture(scope="module")
def cluster() -> Iterator[RabbitCluster]:
    cluster = RabbitCluster(size=3).start()
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture(scope="module")
def private_redis(cluster: RabbitCluster) -> Iterator[RedisServer]:
    server = RedisServer(cluster.root).start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="module")
def stack(cluster: RabbitCluster, private_redis: RedisServer) -> Iterator[Stack]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AMQP_URL", cluster.amqp_url)
        patch.setenv("REDIS_URL", private_redis.url)
        stack = Stack(RESULT_TTL="600")
        try:
            yield stack
        finally:
            # Queue clean-up needs one live node (the cluster goes away right after anyway).
            live = [node.url for node in cluster.nodes if node.alive]
            stack.amqp_url = live[0]
            stack.close()


def test_losing_the_queue_leader_loses_no_task(
    cluster: RabbitCluster,
    stack: Stack,
    private_redis: RedisServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    model = stack.model_name("slow")
    prefix = f"test:{stack.id}:slow:"
    env = {"SLOW_MODEL_COUNTER_PREFIX": prefix, "WORKER_CONCURRENCY": "8"}
    stack.start_worker(SLOW_MODEL, model, **env)
    stack.start_worker(SLOW_MODEL, model, **env)
    queue = durable_queue(model, "1")
    leader = cluster.leader(queue)
    members = cluster.ctl(leader, "list_queues", "name", "type", "members", "-q")
    assert "quorum" in next(line for line in members.splitlines() if line.startswith(queue))

    record = run_load([stack.api_url], model, LOAD_SECONDS, RATE, KILL_AT, leader.kill)

    accepted = record.accepted
    statuses = poll_all([stack.api_url], accepted, timeout=90.0)
    done = [s for s in accepted if statuses.get(s.task_id or "", {}).get("status") == "done"]
    lost = [s.tag for s in accepted if s not in done]
    wrong = [s.tag for s in done if not answers(str(statuses[s.task_id or ""]["result"]), s.tag)]
    counters = redis.Redis.from_url(private_redis.url)
    finished = {s.tag: int(counters.get(f"{prefix}{s.tag}:finished") or 0) for s in done}
    counters.close()
    reruns = sum(1 for count in finished.values() if count > 1)
    refused = [s for s in record.submissions if s.status != 202]
    new_leader = cluster.leader(queue)
    sync_resumed = record.first_after_disruption()
    async_after = [s.sent - record.disrupted_at for s in accepted if s.sent >= record.disrupted_at]
    failed_probes = [p for p in record.probes if not p.ok]
    with capsys.disabled():
        print(
            f"\ncluster failover: killed {leader.name} (leader of {queue}) at t={KILL_AT:g}s; "
            f"new leader {new_leader.name}\n"
            f"  async submitted {len(record.submissions)}, accepted {len(accepted)}, "
            f"refused {len(refused)} ({sorted({s.status for s in refused})}), "
            f"done {len(done)}, lost {len(lost)}, wrong result {len(wrong)}, "
            f"re-run after redelivery {reruns} (result kept once)\n"
            f"  sync probes {len(record.probes)}, failed {len(failed_probes)}; "
            f"serving resumed (first sync success after the kill) after "
            f"{sync_resumed if sync_resumed is None else round(sync_resumed, 2)} s; "
            f"first async accepted after the kill at "
            f"{round(min(async_after), 2) if async_after else None} s"
        )
        for detail in sorted({s.detail for s in refused})[:5]:
            print(f"  refused: {detail}")
    assert new_leader.name != leader.name
    assert len(accepted) > RATE * LOAD_SECONDS / 2, "most submissions must be accepted"
    assert lost == [], f"{len(lost)} accepted tasks never completed: {lost[:10]}"
    assert wrong == [], f"results of other tasks: {wrong[:10]}"
    assert len({s.task_id for s in done}) == len({s.tag for s in done}) == len(done), "duplicates"
    assert all(count >= 1 for count in finished.values())
    assert sync_resumed is not None, "serving never resumed after the node was lost"
    assert sync_resumed < 30.0
