"""Load for failover tests: async submissions and sync probes, with timestamps, then polling.

``run_load`` submits asynchronous tasks at a steady rate and probes with synchronous requests,
while ``disrupt`` (a blocking function: stop a node, kill a process) runs in a thread at
``disrupt_at`` seconds. It records when each request was made and how it ended, so a test can
count lost and duplicated results and measure how long serving stopped.
"""

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx


def answers(text: str, tag: str) -> bool:
    """True if ``text`` holds the reply to the input tagged ``tag`` (the slow test model's
    ``tag=<tag>`` or model_a's echo ``message: <tag>:...``), not another tag's."""
    return re.search(rf"(?:tag=|message: ){re.escape(tag)}(?![0-9])", text) is not None


@dataclass
class Submission:
    """One asynchronous task: its tag (the model input), when, how it was answered."""

    tag: str
    sent: float
    status: int
    task_id: str | None = None
    gateway: str = ""
    detail: str = ""


@dataclass
class Probe:
    """One synchronous request: when, and whether it got its own result (or what error)."""

    sent: float
    done: float
    ok: bool
    error: str = ""
    gateway: str = ""


@dataclass
class LoadRecord:
    """Everything ``run_load`` saw; times are ``time.monotonic()`` values."""

    submissions: list[Submission] = field(default_factory=list)
    probes: list[Probe] = field(default_factory=list)
    disrupted_at: float = 0.0
    disrupted_done: float = 0.0

    @property
    def accepted(self) -> list[Submission]:
        """Submissions the gateway accepted (202 with a task id)."""
        return [s for s in self.submissions if s.status == 202 and s.task_id]

    def first_after_disruption(self, ok: Callable[[Probe], bool] = lambda p: p.ok) -> float | None:
        """Seconds from the disruption to the first probe sent after it that succeeded."""
        after = [p for p in self.probes if p.sent >= self.disrupted_at and ok(p)]
        return min(p.done for p in after) - self.disrupted_at if after else None


async def _submit_loop(
    client: httpx.AsyncClient,
    urls: list[str],
    model: str,
    seconds_per_task: float,
    rate: float,
    until: float,
    record: LoadRecord,
) -> None:
    index = 0
    pending: set[asyncio.Task[None]] = set()

    async def submit(tag: str, base: str) -> None:
        sent = time.monotonic()
        try:
            response = await client.post(
                f"{base}/predict/{model}?mode=async", json={"data": f"{tag}:{seconds_per_task}"}
            )
        except httpx.HTTPError:
            record.submissions.append(Submission(tag, sent, 0, gateway=base, detail="no answer"))
            return
        task_id = response.json().get("task_id") if response.status_code == 202 else None
        detail = "" if task_id else response.text[:160]
        record.submissions.append(
            Submission(tag, sent, response.status_code, task_id, base, detail)
        )

    while time.monotonic() < until:
        base = urls[index % len(urls)]
        task = asyncio.create_task(submit(f"t{index}", base))
        pending.add(task)
        task.add_done_callback(pending.discard)
        index += 1
        await asyncio.sleep(1 / rate)
    await asyncio.gather(*pending)


async def _probe_loop(
    client: httpx.AsyncClient, urls: list[str], model: str, until: float, record: LoadRecord
) -> None:
    index = 0
    while time.monotonic() < until:
        base = urls[index % len(urls)]
        tag = f"p{index}"
        index += 1
        sent = time.monotonic()
        try:
            response = await client.post(
                f"{base}/predict/{model}?timeout=2", json={"data": f"{tag}:0"}, timeout=5.0
            )
            ok = response.status_code == 200 and answers(response.text, tag)
            error = "" if ok else f"{response.status_code} {response.text[:120]}"
        except httpx.HTTPError as e:
            ok, error = False, f"{type(e).__name__}: {e}"
        record.probes.append(Probe(sent, time.monotonic(), ok, error, base))
        await asyncio.sleep(0.1)


async def _run(
    urls: list[str],
    model: str,
    seconds: float,
    rate: float,
    disrupt_at: float,
    disrupt: Callable[[], None],
    seconds_per_task: float,
) -> LoadRecord:
    record = LoadRecord()
    until = time.monotonic() + seconds
    async with httpx.AsyncClient(timeout=10.0) as client:

        async def disruption() -> None:
            await asyncio.sleep(disrupt_at)
            record.disrupted_at = time.monotonic()
            await asyncio.to_thread(disrupt)
            record.disrupted_done = time.monotonic()

        await asyncio.gather(
            _submit_loop(client, urls, model, seconds_per_task, rate, until, record),
            _probe_loop(client, urls, model, until, record),
            disruption(),
        )
    return record


def run_load(
    urls: list[str],
    model: str,
    seconds: float,
    rate: float,
    disrupt_at: float,
    disrupt: Callable[[], None],
    seconds_per_task: float = 0.05,
) -> LoadRecord:
    """Submit async tasks to ``urls`` in turn at ``rate``/s for ``seconds``, probe with sync
    requests, and call ``disrupt`` after ``disrupt_at`` seconds."""
    return asyncio.run(_run(urls, model, seconds, rate, disrupt_at, disrupt, seconds_per_task))


def poll_all(
    base_urls: list[str], submissions: list[Submission], timeout: float
) -> dict[str, dict[str, object]]:
    """Poll every submitted task until none is pending (or ``timeout``); return the statuses.

    Each task is polled through the first of ``base_urls`` that answers.
    """
    statuses: dict[str, dict[str, object]] = {}
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=10.0) as client:
        while time.monotonic() < deadline:
            waiting = [
                s
                for s in submissions
                if s.task_id and statuses.get(s.task_id, {}).get("status") in (None, "pending")
            ]
            if not waiting:
                break
            for submission in waiting:
                assert submission.task_id is not None
                for base in base_urls:
                    try:
                        response = client.get(f"{base}/tasks/{submission.task_id}")
                    except httpx.HTTPError:
                        continue
                    if response.status_code == 200:
                        statuses[submission.task_id] = response.json()
                        break
            time.sleep(0.5)
    return statuses
