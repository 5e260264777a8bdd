"""Steady traffic against a gateway during faults, and the tally of what came of it."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx


def is_json_error(response: httpx.Response) -> bool:
    """True when ``response`` carries the gateway's JSON error object."""
    try:
        body: Any = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and isinstance(body.get("error"), dict)


@dataclass
class Tally:
    """What the asynchronous submissions came to once every accepted task was polled."""

    sent: int = 0
    accepted: int = 0
    refused: Counter[int] = field(default_factory=Counter)
    completed: int = 0
    failed: int = 0
    wrong: int = 0
    lost: int = 0


class AsyncTraffic:
    """Submits ``?mode=async`` tasks of model_a in a thread, one every ``interval`` seconds.

    Each task's data is unique, so its reply (``Processed message: <data>``) proves it is the
    right one. A refused submission must be a JSON 429/503; anything else is a protocol breach,
    recorded in ``breaches``.
    """

    def __init__(self, api_url: str, model: str, interval: float = 0.05) -> None:
        self.api_url = api_url
        self.model = model
        self.interval = interval
        self.tally = Tally()
        self.expected: dict[str, str] = {}
        self.breaches: list[str] = []
        self.refusal_samples: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        """Start submitting."""
        self._thread.start()

    def stop(self) -> None:
        """Stop submitting (returns once the thread ended)."""
        self._stop.set()
        self._thread.join(60)

    def _run(self) -> None:
        with httpx.Client(base_url=self.api_url, timeout=30.0) as client:
            i = 0
            while not self._stop.is_set():
                i += 1
                data = f"task-{i}"
                self.tally.sent += 1
                started = time.monotonic()
                try:
                    response = client.post(
                        f"/predict/{self.model}", params={"mode": "async"}, json={"data": data}
                    )
                except httpx.HTTPError as e:
                    self.breaches.append(f"{data}: {type(e).__name__} after "
                                         f"{time.monotonic() - started:.1f} s")  # fmt: skip
                    continue
                if response.status_code == 202:
                    self.tally.accepted += 1
                    self.expected[response.json()["task_id"]] = f"Processed message: {data}"
                elif response.status_code in (429, 503) and is_json_error(response):
                    self.tally.refused[response.status_code] += 1
                    if len(self.refusal_samples) < 5:
                        self.refusal_samples.append(response.text[:300])
                    if "retry-after" not in response.headers:
                        self.breaches.append(f"{data}: {response.status_code} without Retry-After")
                else:
                    self.breaches.append(f"{data}: {response.status_code} {response.text[:200]}")
                self._stop.wait(self.interval)

    def settle(self, timeout: float) -> Tally:
        """Poll every accepted task until none is pending or ``timeout`` passed; count them."""
        pending = dict(self.expected)
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.api_url, timeout=10.0) as client:
            while pending and time.monotonic() < deadline:
                for task_id, reply in list(pending.items()):
                    response = client.get(f"/tasks/{task_id}")
                    if response.status_code != 200:
                        continue
                    state = response.json()
                    if state["status"] == "pending":
                        continue
                    del pending[task_id]
                    if state["status"] != "done":
                        self.tally.failed += 1
                    elif state["result"].get("reply") != reply:
                        self.tally.wrong += 1
                    else:
                        self.tally.completed += 1
                if pending:
                    time.sleep(0.5)
        self.tally.lost = len(pending)
        return self.tally
