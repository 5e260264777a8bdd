"""RabbitMQ, Redis and the registry die (SIGKILL) and come back while async tasks flow.

While a component is down the gateway answers a JSON 503 with ``Retry-After`` (or a JSON 504
when a task's deadline passes first), never a 500 and never later than the request's deadline;
once it is back, predict is served again within ``RECOVERY_BOUND`` seconds; the logs hold a few
warnings per outage, no tracebacks; and of the async tasks submitted across all the faults none
is lost and none comes back wrong. The measured figures are printed and written to
``$TEST_UNDECLARED_OUTPUTS_DIR/faults.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.faults.brokers import Brokers
from tests.faults.traffic import AsyncTraffic, is_json_error
from tests.integration.stack import Service, Stack, wait_until

RECOVERY_BOUND = 5.0
"""Seconds within which predict must be served again once a component answers (goal: 2 s)."""

DOWN_SECONDS = 4.0
"""How long each component stays down while the gateway is probed."""

PROBE_TIMEOUT = 1.0
"""The ``?timeout=`` of the probing predicts; an answer must come within it plus ``SLACK``."""

SLACK = 2.0

WARM_UP = 5.0
"""Seconds of traffic before the first fault."""

MAX_WARNINGS = 12
"""Warning and error lines a service may log per outage (one per lost connection, and its
recovery, give a handful)."""

FIGURES: dict[str, Any] = {}


class Fixture:
    """The stack, its model and the traffic of the module."""

    def __init__(self, stack: Stack, model: str, traffic: AsyncTraffic) -> None:
        self.stack = stack
        self.model = model
        self.traffic = traffic


@pytest.fixture(scope="module")
def world(brokers: Brokers) -> Iterator[Fixture]:
    with Stack(RESULT_TTL="600", RETRY_AFTER="1") as stack:
        model = stack.model_name("model_a")
        stack.start_worker("models.model_a", model)
        traffic = AsyncTraffic(stack.api_url, model)
        traffic.start()
        # Let the queues live a while first: RabbitMQ 3.10 killed within a moment of declaring
        # a quorum queue may restart without electing its leader, and a consumer then waits.
        time.sleep(WARM_UP)
        try:
            yield Fixture(stack, model, traffic)
        finally:
            traffic.stop()
            outputs = os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR")
            if outputs:  # the services' logs, for whoever reads a failure
                shutil.copytree(stack.log_dir, Path(outputs, "logs"), dirs_exist_ok=True)


def _predict(fixture: Fixture, timeout: float) -> tuple[httpx.Response | None, float]:
    started = time.monotonic()
    try:
        response = fixture.stack.http.post(
            f"/predict/{fixture.model}",
            params={"timeout": str(timeout)},
            json={"data": "probe"},
            timeout=timeout + 10,
        )
    except httpx.HTTPError:
        return None, time.monotonic() - started
    return response, time.monotonic() - started


def _probe_down(fixture: Fixture, seconds: float) -> Counter[int]:
    """Send predicts for ``seconds``; each answer must be JSON, in time, and never a 500."""
    statuses: Counter[int] = Counter()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        response, elapsed = _predict(fixture, PROBE_TIMEOUT)
        assert response is not None, f"no answer within {elapsed:.1f} s"
        assert elapsed <= PROBE_TIMEOUT + SLACK, f"answered after {elapsed:.1f} s"
        statuses[response.status_code] += 1
        assert response.status_code in (200, 503, 504), response.text
        if response.status_code != 200:
            assert is_json_error(response), response.text
        if response.status_code == 503:
            assert response.headers.get("retry-after"), response.headers
        for path in (f"/models/{fixture.model}", "/models"):
            other = fixture.stack.http.get(path, timeout=PROBE_TIMEOUT + 10)
            assert other.status_code in (200, 503), other.text
            if other.status_code == 503:
                assert is_json_error(other) and other.headers.get("retry-after"), other.text
        time.sleep(0.1)
    return statuses


def _seconds_to_serve(fixture: Fixture, since: float) -> float:
    def served() -> bool:
        response, _ = _predict(fixture, 0.5)
        return response is not None and response.status_code == 200

    wait_until(served, 60, interval=0.02, what="predict served again")
    return round(time.monotonic() - since, 2)


def _services(stack: Stack) -> list[Service]:
    return [stack.gateway, stack.registry, *stack.workers]


def _log_marks(stack: Stack) -> dict[Path, int]:
    return {s.log_path: len(s.log().splitlines()) for s in _services(stack)}


def _new_log_lines(stack: Stack, marks: dict[Path, int]) -> dict[str, list[str]]:
    return {s.label: s.log().splitlines()[marks.get(s.log_path, 0) :] for s in _services(stack)}


def _not_info(line: str) -> bool:
    """A log line above INFO: a JSON line (``conveyor.logs``) whose level is above ``info``, or
    a text line not marked INFO (a traceback's lines count once, by their first line)."""
    text = line.strip()
    if text.startswith("{"):
        try:
            record = json.loads(text)
        except ValueError:
            return True
        return str(record.get("level", "")).lower() not in ("debug", "info")
    return bool(text) and not text.startswith(("INFO", "File ", "^")) and " INFO " not in text


def _outage(
    fixture: Fixture,
    name: str,
    kill: Callable[[], None],
    start: Callable[[], float],
    while_down: Callable[[], None] | None = None,
    also_back: Callable[[float], dict[str, float]] | None = None,
) -> None:
    marks = _log_marks(fixture.stack)
    accepted_before = fixture.traffic.tally.accepted
    kill()
    if while_down is not None:
        while_down()
    statuses = _probe_down(fixture, DOWN_SECONDS)
    back = start()
    seconds = _seconds_to_serve(fixture, back)
    extra = also_back(back) if also_back is not None else {}
    time.sleep(2.0)  # let every service log what it logs on recovery
    lines = _new_log_lines(fixture.stack, marks)
    tracebacks = {label: sum("Traceback" in line for line in ls) for label, ls in lines.items()}
    warnings = {label: sum(_not_info(line) for line in ls) for label, ls in lines.items()}
    FIGURES[name] = {
        "probe_statuses_while_down": dict(statuses),
        "seconds_to_serve_after_back": seconds,
        "async_accepted_during": fixture.traffic.tally.accepted - accepted_before,
        "warning_lines": warnings,
        "tracebacks": tracebacks,
        **extra,
    }
    assert max([seconds, *extra.values()]) <= RECOVERY_BOUND, FIGURES[name]
    assert not any(tracebacks.values()), "\n".join(line for ls in lines.values() for line in ls)
    assert all(n <= MAX_WARNINGS for n in warnings.values()), "\n".join(
        line for ls in lines.values() for line in ls
    )
    if name != "registry":  # the gateway serves cached models while the registry is away
        assert statuses[503] > 0, f"{name} down but never a 503: {statuses}"


def test_rabbitmq_outage(world: Fixture, brokers: Brokers) -> None:
    _outage(world, "rabbitmq", brokers.rabbitmq.kill, brokers.rabbitmq.start)


def test_redis_outage(world: Fixture, brokers: Brokers) -> None:
    _outage(world, "redis", brokers.redis.kill, brokers.redis.start)


def test_registry_outage(world: Fixture) -> None:
    stack = world.stack
    old = stack.registry
    env = {
        "AMQP_URL": os.environ["AMQP_URL"],
        "REDIS_URL": os.environ["REDIS_URL"],
        "REGISTRY_PORT": str(stack.registry_port),
        "REGISTRY_KEY_PREFIX": stack.key_prefix,
        "LIVENESS_WINDOW": "5.0",
    }

    def kill() -> None:
        old.signal(signal.SIGKILL)
        old.process.wait()

    def start() -> float:
        stack.registry = Service("registry", env, stack.log_dir, "registry-restarted")

        def up() -> bool:
            return httpx.get(f"{stack.registry_url}/healthz", timeout=1).status_code == 200

        wait_until(up, 60, interval=0.02, what="registry back")
        return time.monotonic()

    # A model the gateway has not cached yet cannot be served without the registry.
    def probe_unknown() -> None:
        response = stack.http.post("/predict/never_cached_model", json={"data": "x"})
        assert response.status_code == 503, response.text
        assert is_json_error(response) and response.headers.get("retry-after")

    def models_served(back: float) -> dict[str, float]:
        wait_until(
            lambda: stack.http.get(f"/models/{world.model}").status_code == 200,
            30, interval=0.02, what="/models served again",
        )  # fmt: skip
        return {"seconds_to_models_after_back": round(time.monotonic() - back, 2)}

    _outage(world, "registry", kill, start, while_down=probe_unknown, also_back=models_served)


def test_no_task_lost_or_wrong(world: Fixture, capsys: pytest.CaptureFixture[str]) -> None:
    world.traffic.stop()
    tally = world.traffic.settle(timeout=90)
    FIGURES["tasks"] = {
        "sent": tally.sent,
        "accepted": tally.accepted,
        "refused": dict(tally.refused),
        "completed": tally.completed,
        "failed": tally.failed,
        "wrong": tally.wrong,
        "lost": tally.lost,
        "breaches": world.traffic.breaches[:20],
        "refusal_samples": world.traffic.refusal_samples,
    }
    report = json.dumps(FIGURES, indent=2)
    outputs = os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR")
    if outputs:
        Path(outputs, "faults.json").write_text(report)
    with capsys.disabled():
        print(f"\nfault figures:\n{report}")
    assert tally.accepted > 0
    assert world.traffic.breaches == []
    assert (tally.lost, tally.wrong, tally.failed) == (0, 0, 0), report
    assert tally.completed == tally.accepted
