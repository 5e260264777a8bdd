"""Two gateways on one set of brokers; one is SIGKILLed under load.

Async and sync load goes through both gateways in turn. After the kill: every async task the
dead gateway accepted still completes and can be polled through the other gateway; sync callers
of the dead gateway get a connection error, and nothing else goes wrong.
"""

import signal
from collections.abc import Iterator

import pytest

from tests.cluster.load import answers, poll_all, run_load
from tests.gateways.second import second_gateway as second
from tests.integration.stack import SLOW_MODEL, Stack

LOAD_SECONDS = 14.0
KILL_AT = 5.0
RATE = 20.0
CONNECTION_ERRORS = ("ConnectError", "ReadError", "RemoteProtocolError", "WriteError")


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with Stack(RESULT_TTL="600") as stack:
        yield stack


@pytest.fixture(scope="module")
def second_gateway(stack: Stack) -> Iterator[str]:
    with second(stack) as (url, _):
        yield url


def test_killing_one_gateway_loses_nothing(
    stack: Stack, second_gateway: str, capsys: pytest.CaptureFixture[str]
) -> None:
    model = stack.model_name("slow")
    env = {"SLOW_MODEL_COUNTER_PREFIX": f"test:{stack.id}:slow:", "WORKER_CONCURRENCY": "8"}
    stack.start_worker(SLOW_MODEL, model, **env)
    doomed, survivor = stack.api_url, second_gateway

    def kill() -> None:
        stack.gateway.signal(signal.SIGKILL)
        stack.gateway.process.wait(10)

    record = run_load([doomed, survivor], model, LOAD_SECONDS, RATE, KILL_AT, kill)

    by_doomed = [s for s in record.accepted if s.gateway == doomed]
    statuses = poll_all([survivor], record.accepted, timeout=90.0)
    done = [s for s in record.accepted if statuses.get(s.task_id or "", {}).get("status") == "done"]
    lost = [s.tag for s in record.accepted if s not in done]
    wrong = [
        s.tag for s in done if not answers(str(statuses[s.task_id or ""].get("result")), s.tag)
    ]
    after = [p for p in record.probes if p.sent >= record.disrupted_done]
    doomed_after = [p for p in after if p.gateway == doomed]
    survivor_failures = [p for p in record.probes if p.gateway == survivor and not p.ok]
    doomed_failures = [p for p in record.probes if p.gateway == doomed and not p.ok]
    odd = [p.error for p in doomed_failures if not p.error.startswith(CONNECTION_ERRORS)]
    refused_by_survivor = [
        s for s in record.submissions if s.gateway == survivor and s.status != 202
    ]
    with capsys.disabled():
        print(
            f"\ntwo gateways: killed one at t={KILL_AT:g}s; async accepted "
            f"{len(record.accepted)} ({len(by_doomed)} by the killed gateway), done "
            f"{len(done)}, lost {len(lost)}, wrong {len(wrong)}; sync probes "
            f"{len(record.probes)}: killed gateway failed {len(doomed_failures)} "
            f"({sorted({p.error.split(':')[0] for p in doomed_failures})}), surviving gateway "
            f"failed {len(survivor_failures)}; survivor refused {len(refused_by_survivor)} async"
        )
    assert by_doomed, "the killed gateway accepted no task before it died"
    assert lost == [], f"tasks never completed: {lost[:10]}"
    assert wrong == []
    assert doomed_after and all(not p.ok for p in doomed_after)
    assert odd == [], f"sync callers of the dead gateway got more than a connection error: {odd}"
    assert survivor_failures == [], [p.error for p in survivor_failures][:5]
    assert refused_by_survivor == [], [s.detail for s in refused_by_survivor][:5]
