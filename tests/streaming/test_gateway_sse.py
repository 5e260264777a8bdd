"""Issue 31's end-to-end promises, through the gateway's own SSE (``POST /predict/<model>?stream=
true``) with model_c, real brokers and real processes (a stack of its own: this test starts and
kills its model_c workers itself).

- A worker SIGKILLed mid-stream: the client sees a ``restart`` event, then the whole stream
  again; the text after the restart equals an uninterrupted read with the same seed.
- A client that goes away mid-stream stops the generation within one piece: the task's event
  stream holds at most one piece more than when the client left, then ``cancelled``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis

from conveyor.events import parse_entries
from conveyor.protocol import EVENTS_KEY_PREFIX
from tests.integration.stack import Stack, wait_until

MODEL_C = "models.model_c"

Event = tuple[str, Any]
"""(event, data as JSON) of one Server-Sent Event; a piece's event is "message"."""


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with Stack(MAX_TIMEOUT="120") as stack:
        yield stack


def _events(lines: Iterator[str]) -> Iterator[Event]:
    kind, data = "message", ""
    for line in lines:
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            data = line[6:]
        elif line == "" and data:
            yield kind, json.loads(data)
            kind, data = "message", ""


def _read_all(url: str, model: str, body: dict[str, Any]) -> list[Event]:
    with (
        httpx.Client(base_url=url, timeout=120) as client,
        client.stream("POST", f"/predict/{model}?stream=true&timeout=120", json=body) as response,
    ):
        assert response.status_code == 200, response.read()
        return list(_events(response.iter_lines()))


def _texts(events: list[Event]) -> list[str]:
    return [data["text"] for kind, data in events if kind == "message"]


def test_a_worker_killed_mid_stream_gives_a_restart_then_the_whole_stream(stack: Stack) -> None:
    model = stack.model_name("model_c")
    doomed = stack.start_worker(MODEL_C, model, CHUNK_DELAY_MS="100", WORKER_PREFETCH="1")
    body = {"prompt": "the river", "max_tokens": 20, "seed": 21}
    events: list[Event] = []
    failure: list[BaseException] = []
    five = threading.Event()

    def read() -> None:
        try:
            with (
                httpx.Client(base_url=stack.api_url, timeout=120) as client,
                client.stream(
                    "POST", f"/predict/{model}?stream=true&timeout=120", json=body
                ) as response,
            ):
                assert response.status_code == 200, response.read()
                for event in _events(response.iter_lines()):
                    events.append(event)
                    if len(events) == 5:
                        five.set()
        except BaseException as e:  # the main thread asserts
            failure.append(e)
        finally:
            five.set()

    reader = threading.Thread(target=read, name="sse-reader")
    reader.start()
    assert five.wait(60), "no five pieces in time"
    assert not failure, failure
    doomed.signal(9)
    doomed.process.wait(30)
    stack.start_worker(MODEL_C, model, CHUNK_DELAY_MS="5")
    reader.join(120)
    assert not reader.is_alive(), "the stream did not end"
    assert not failure, failure

    kinds = [kind for kind, _ in events]
    assert kinds.count("restart") == 1, kinds
    cut = kinds.index("restart")
    assert cut >= 5 and all(kind == "message" for kind in kinds[:cut])
    assert kinds[cut + 1 :] == ["message"] * 20 + ["done"], kinds
    after = "".join(_texts(events[cut + 1 :]))
    # The killed run's pieces were a true beginning of the same text.
    assert after.startswith("".join(_texts(events[:cut])))
    assert events[-1][1] == {"text": after}  # the result: the restarted run's pieces combined
    uninterrupted = _read_all(stack.api_url, model, body)
    assert [kind for kind, _ in uninterrupted] == ["message"] * 20 + ["done"]
    assert "".join(_texts(uninterrupted)) == after


FINAL = ("done", "failed", "cancelled")


def _types(client: redis.Redis, key: str) -> list[str]:
    """The types of the events of the task's event stream at ``key``."""
    return [event.type for event in parse_entries(client.xrange(key))]


def _final(client: redis.Redis, key: str) -> list[str] | None:
    types = _types(client, key)
    return types if types and types[-1] in FINAL else None


def test_a_client_that_goes_away_stops_the_generation_within_one_piece(stack: Stack) -> None:
    model = stack.model_name("model_c")
    stack.start_worker(MODEL_C, model, CHUNK_DELAY_MS="150")
    client = redis.Redis.from_url(stack.redis_url)
    try:
        before = set(client.scan_iter(match=f"{EVENTS_KEY_PREFIX}*"))
        body = {"prompt": "The lamp", "max_tokens": 100, "seed": 5}
        with (
            httpx.Client(base_url=stack.api_url, timeout=60) as http,
            http.stream("POST", f"/predict/{model}?stream=true", json=body) as response,
        ):
            assert response.status_code == 200, response.read()
            for pieces, (kind, _) in enumerate(_events(response.iter_lines()), 1):
                assert kind == "message"
                if pieces == 3:
                    break
            # This stack runs one streamed task at a time: its event stream is the new key.
            (key,) = set(client.scan_iter(match=f"{EVENTS_KEY_PREFIX}*")) - before
            key = key.decode()
            left_at = _types(client, key).count("chunk")
        left = time.monotonic()  # the connection is closed now
        ended = wait_until(
            lambda: _final(client, key), 20.0, interval=0.05, what="the stream's final event"
        )
        assert time.monotonic() - left < 5.0  # not the deadline's doing (100 pieces take 15 s)
        assert ended[-1] == "cancelled", ended
        assert ended.count("chunk") - left_at <= 1, (left_at, ended)
        assert ended.count("chunk") < 100
        assert ended.count("restart") == 0
    finally:
        client.close()
