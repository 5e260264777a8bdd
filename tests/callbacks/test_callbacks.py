"""Completion callbacks end to end: a registry, two gateways and a model_a worker as processes,
and a real HTTP receiver in this process that checks every signature.

1,000 async tasks are submitted with a ``callback_url``. The receiver answers 503 to the first
POST of every event (so every callback is retried once) and takes a moment over each POST (so
deliveries are in flight). The first gateway is SIGKILLed after a quarter of the callbacks
arrived, at a moment it holds deliveries, and started again a second later. Every task's
callback must arrive at least once, signed, carrying the JSON ``GET /tasks/{id}`` answers; a
duplicate is only possible for the deliveries the killed gateway had in flight, and each is
counted. Callbacks to a receiver that always fails, and to a port nobody listens on, end
``undeliverable`` after ``CALLBACK_MAX_ATTEMPTS`` (2); URLs the gateway may not call are a 422
naming ``callback_url``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import redis

from api.callbacks.outbox import GROUP
from api.callbacks.tests.receiver import Received, Receiver
from conveyor.protocol import CALLBACKS_STREAM, callback_key
from tests.gateways.second import second_gateway
from tests.integration.stack import Stack, free_port, wait_until

TOOK_OVER = re.compile(r"callbacks: took over (\d+) stale deliveries")
TASKS = 1000
SECRET = "integration-test-callback-secret"
CONCURRENCY = 16
RECEIVER_SECONDS = 0.05
KILL_AFTER = TASKS // 4
GATEWAY_ENV = {
    "CALLBACK_SECRET": SECRET,
    "CALLBACK_BACKOFF_SECONDS": "0.2",
    "CALLBACK_MAX_ATTEMPTS": "2",
    "CALLBACK_TIMEOUT": "2",
    "CALLBACK_CONCURRENCY": str(CONCURRENCY),
    "CALLBACK_ALLOWED_HOSTS": "127.0.0.1,localhost",
    "RESULT_TTL": "600",
}


def signed(received: Received, tolerance: int = 300) -> bool:
    """docs/api.md's receiver check, with the standard library only."""
    header = received.headers.get("conveyor-signature", "")
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    t, v1 = parts.get("t", ""), parts.get("v1", "")
    if not t.isdigit() or abs(time.time() - int(t)) > tolerance:
        return False
    mac = hmac.new(SECRET.encode(), f"{t}.".encode() + received.body, hashlib.sha256)
    return hmac.compare_digest(mac.hexdigest(), v1)


class FlakyReceiver:
    """``/cb``: 503 to the first POST of each event id, 200 after; ``/always-fails``: 503."""

    def __init__(self) -> None:
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        self.accepted = 0
        self.quarter_accepted = threading.Event()
        """Set once ``KILL_AFTER`` POSTs were answered 200."""
        self.server = Receiver(self.answer)

    def answer(self, path: str, headers: dict[str, str], body: bytes) -> int:
        time.sleep(RECEIVER_SECONDS)
        if path.startswith("/always-fails"):
            return 503
        event = headers.get("conveyor-event-id", "")
        with self._lock:
            first = event not in self._seen
            self._seen.add(event)
            if not first:
                self.accepted += 1
                if self.accepted >= KILL_AFTER:
                    self.quarter_accepted.set()
        return 503 if first else 200

    def delivered(self) -> dict[str, list[Received]]:
        """The POSTs to ``/cb`` answered 200, by event id."""
        by_event: dict[str, list[Received]] = {}
        for post in self.server.received:
            if post.path == "/cb" and post.status == 200:
                by_event.setdefault(post.headers.get("conveyor-event-id", ""), []).append(post)
        return by_event


@dataclass
class Run:
    """What the run saw: task ids by input, when the gateway was killed and how long the run
    took (seconds from its start)."""

    task_ids: dict[int, str]
    failing_ids: list[str]
    refused_id: str
    started: float = 0.0
    killed_at: float = 0.0
    held_at_kill: int = 0
    seconds: float = 0.0


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with Stack(liveness_window=5.0, **GATEWAY_ENV) as stack:
        yield stack


async def _submit(
    client: httpx.AsyncClient, gateway: str, model: str, data: str, callback: str
) -> str:
    response = await client.post(
        f"{gateway}/predict/{model}",
        params={"mode": "async", "callback_url": callback},
        json={"data": data},
    )
    assert response.status_code == 202, response.text
    return str(response.json()["task_id"])


def _held_by(stack: Stack, pid: int) -> int:
    """Deliveries the gateway process ``pid`` holds (its consumer's pending entries)."""
    with redis.Redis.from_url(stack.redis_url, decode_responses=True) as client:
        consumers = client.xinfo_consumers(CALLBACKS_STREAM, GROUP)
    return sum(int(c["pending"]) for c in consumers if f"-{pid}-" in str(c["name"]))


async def _kill_and_restart(stack: Stack, receiver: FlakyReceiver, run: Run) -> None:
    assert await asyncio.to_thread(receiver.quarter_accepted.wait, 120.0)
    pid = stack.gateway.pid
    run.held_at_kill = await asyncio.to_thread(
        wait_until, lambda: _held_by(stack, pid), 30.0, 0.005, "the gateway holding deliveries"
    )
    await asyncio.to_thread(stack.gateway.kill)
    run.killed_at = time.monotonic() - run.started
    await asyncio.sleep(1.0)
    stack.gateway.start()
    await asyncio.to_thread(
        wait_until,
        lambda: httpx.get(f"{stack.api_url}/readyz", timeout=2.0).status_code == 200,
        60.0,
        what="restarted gateway ready",
    )


async def _run(stack: Stack, survivor: str, model: str, receiver: FlakyReceiver) -> Run:
    started = time.monotonic()
    limit = asyncio.Semaphore(32)
    async with httpx.AsyncClient(timeout=60.0) as client:

        async def submit(i: int, callback: str) -> str:
            async with limit:
                return await _submit(client, survivor, model, f"request {i}", callback)

        failing = [submit(-i, receiver.server.url("/always-fails")) for i in range(1, 4)]
        refused = submit(-4, f"http://127.0.0.1:{free_port()}/nobody")
        run = Run({}, list(await asyncio.gather(*failing)), await refused, started)
        killer = asyncio.create_task(_kill_and_restart(stack, receiver, run))
        ids = await asyncio.gather(*(submit(i, receiver.server.url("/cb")) for i in range(TASKS)))
        run.task_ids = dict(enumerate(ids))
        await killer

    def all_delivered() -> bool:
        return len(receiver.delivered()) >= TASKS

    await asyncio.to_thread(wait_until, all_delivered, 120.0, 0.1, "every callback delivered")
    run.seconds = time.monotonic() - started
    return run


def test_every_callback_arrives_signed_despite_failures_and_a_killed_gateway(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    model = stack.model_name("model_a")
    stack.start_worker("models.model_a", model)
    receiver = FlakyReceiver()
    try:
        with second_gateway(stack, **GATEWAY_ENV) as (survivor, _):
            run = asyncio.run(_run(stack, survivor, model, receiver))
            statuses = _statuses(survivor, list(run.task_ids.values()))
            metrics = httpx.get(f"{survivor}/metrics", timeout=10.0).text
            states = _states(stack, [*run.task_ids.values(), *run.failing_ids, run.refused_id])
            time.sleep(0.5)  # anything still arriving would be a stray duplicate
            posts = receiver.server.received
    finally:
        receiver.server.close()

    delivered = receiver.delivered()
    by_id = {task_id: i for i, task_id in run.task_ids.items()}
    assert sorted(delivered) == sorted(f"{t}.done" for t in run.task_ids.values())
    unsigned = [p.headers.get("conveyor-event-id") for p in posts if not signed(p)]
    assert unsigned == []
    for event, copies in delivered.items():
        task_id = event.removesuffix(".done")
        for copy in copies:
            body = json.loads(copy.body)
            # The body is the task's GET /tasks/{id}, but for the callback's own state there.
            status = statuses[task_id]
            shown = {k: v for k, v in status.items() if k != "callback"}
            assert body == shown, (body, shown)
            callback = status.get("callback")
            assert isinstance(callback, dict), status
            assert callback["state"] in ("pending", "delivered"), status
        assert statuses[task_id]["result"] == {
            "reply": f"Processed message: request {by_id[task_id]}"
        }
    duplicates = {event: len(copies) for event, copies in delivered.items() if len(copies) > 1}
    answered = Counter((p.path, p.status) for p in posts)
    first_refusals = answered[("/cb", 503)]
    state_counts = Counter(states[t].get("state") for t in run.task_ids.values())
    taken_over = sum(
        int(n) for log in stack.log_dir.glob("api*.log") for n in TOOK_OVER.findall(log.read_text())
    )
    with capsys.disabled():
        print(
            f"\ncallbacks: {TASKS} tasks, {len(posts)} POSTs in {run.seconds:.1f} s "
            f"({first_refusals} answered 503 and retried, "
            f"{sum(len(c) for c in delivered.values())} answered 200 for {len(delivered)} "
            f"events: {len(duplicates)} duplicates {sorted(duplicates.values())}); gateway "
            f"SIGKILLed at {run.killed_at:.1f} s ({KILL_AFTER} delivered, it held "
            f"{run.held_at_kill}), {taken_over} taken over, restarted; states {dict(state_counts)}"
        )
    assert first_refusals == TASKS  # every event refused once, then retried
    assert len(duplicates) <= CONCURRENCY, duplicates  # only what the killed gateway had in flight
    assert taken_over >= 1  # what it held was delivered by a gateway that took it over
    assert all(n == 2 for n in duplicates.values())
    assert state_counts == {"delivered": TASKS}
    assert {states[t]["attempts"] for t in run.task_ids.values()} <= {"1", "2"}
    for task_id in run.failing_ids:
        assert (states[task_id]["state"], states[task_id]["attempts"]) == ("undeliverable", "2")
        assert states[task_id]["last_error"] == "HTTP 503"
    refused = states[run.refused_id]
    assert (refused["state"], refused["attempts"]) == ("undeliverable", "2")
    assert refused["last_error"].startswith("connection failed"), refused
    assert 'conveyor_callbacks_total{outcome="delivered"}' in metrics


def _statuses(gateway: str, task_ids: list[str]) -> dict[str, dict[str, object]]:
    """Every task as ``GET /tasks/{id}`` answers it."""

    async def read_all() -> dict[str, dict[str, object]]:
        limit = asyncio.Semaphore(32)
        async with httpx.AsyncClient(base_url=gateway, timeout=30.0) as client:

            async def read(task_id: str) -> tuple[str, dict[str, object]]:
                async with limit:
                    response = await client.get(f"/tasks/{task_id}")
                    response.raise_for_status()
                    return task_id, response.json()

            return dict(await asyncio.gather(*(read(t) for t in task_ids)))

    return asyncio.run(read_all())


def _states(stack: Stack, task_ids: list[str]) -> dict[str, dict[str, str]]:
    """Each task's callback delivery state, waiting until none is pending any more."""
    client = redis.Redis.from_url(stack.redis_url, decode_responses=True)

    def read() -> dict[str, dict[str, str]]:
        pipe = client.pipeline(transaction=False)
        for task_id in task_ids:
            pipe.hgetall(callback_key(task_id))
        return dict(zip(task_ids, pipe.execute(), strict=True))

    def settled() -> dict[str, dict[str, str]] | None:
        states = read()
        done = all(s.get("state") in ("delivered", "undeliverable") for s in states.values())
        return states if done else None

    try:
        found: dict[str, dict[str, str]] = wait_until(settled, 60.0, what="every state settled")
        return found
    finally:
        client.close()


def test_urls_the_gateway_may_not_call_are_a_422_naming_callback_url(stack: Stack) -> None:
    model = stack.model_name("model_a")
    for url, header in (
        ("ftp://127.0.0.1/x", False),
        ("http://example.com/cb", False),
        ("http://example.com/cb", True),
        ("https://user:pw@127.0.0.1/cb", False),
    ):
        if header:
            response = stack.http.post(
                f"/predict/{model}?mode=async", json={"data": "x"}, headers={"Callback-URL": url}
            )
        else:
            response = stack.http.post(
                f"/predict/{model}", params={"mode": "async", "callback_url": url},
                json={"data": "x"},
            )  # fmt: skip
        assert response.status_code == 422, (url, response.text)
        assert response.headers["content-type"].startswith("application/json")
        assert response.json()["error"]["field"] == "callback_url", response.text
    sync = stack.http.post(
        f"/predict/{model}", params={"callback_url": "http://127.0.0.1/cb"}, json={"data": "x"}
    )
    assert sync.status_code == 422 and sync.json()["error"]["field"] == "callback_url"
