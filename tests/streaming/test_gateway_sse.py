"""Issue 31's end-to-end promises, through the gateway's own SSE (``POST /predict/<model>?stream=
true``) with model_c, real brokers and real processes (a stack of its own: this test starts and
kills its model_c workers itself).

- A worker SIGKILLed mid-stream: the client sees a ``restart`` event, then the whole stream
  again; the text after the restart equals an uninterrupted read with the same seed.
- A client that goes away mid-stream stops the generation within one piece: the task's event
  stream holds at most one piece more than when the client left, then ``cancelled``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import redis

from tests.integration.sse import event_types, events_keys, final_types, iter_events
from tests.integration.stack import Stack, wait_until
from tests.streaming.mid_stream import MODEL_C, kill_mid_stream


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with Stack(MAX_TIMEOUT="120") as stack:
        yield stack


def _events(lines: Iterator[str]) -> Iterator[tuple[str, Any]]:
    """(event, data) of each Server-Sent Event; a piece's event is "message"."""
    return ((kind, data) for _, kind, data in iter_events(lines))


def _read_all(url: str, model: str, body: dict[str, Any]) -> list[tuple[str, Any]]:
    with (
        httpx.Client(base_url=url, timeout=120) as client,
        client.stream("POST", f"/predict/{model}?stream=true&timeout=120", json=body) as response,
    ):
        assert response.status_code == 200, response.read()
        return list(_events(response.iter_lines()))


def _texts(events: list[tuple[str, Any]]) -> list[str]:
    return [data["text"] for kind, data in events if kind == "message"]


def test_a_worker_killed_mid_stream_gives_a_restart_then_the_whole_stream(stack: Stack) -> None:
    body = {"prompt": "the river", "max_tokens": 20, "seed": 21}
    events: list[tuple[str, Any]] = []

    def read(model: str, at_fifth: Callable[[], None]) -> None:
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
                    at_fifth()

    model = kill_mid_stream(stack, read)
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


def test_a_client_that_goes_away_stops_the_generation_within_one_piece(stack: Stack) -> None:
    model = stack.model_name("model_c")
    stack.start_worker(MODEL_C, model, CHUNK_DELAY_MS="150")
    client = redis.Redis.from_url(stack.redis_url)
    try:
        before = events_keys(client)
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
            (key,) = events_keys(client) - before
            left_at = event_types(client, key).count("chunk")
        left = time.monotonic()  # the connection is closed now
        ended = wait_until(
            lambda: final_types(client, key), 20.0, interval=0.05, what="the stream's final event"
        )
        assert time.monotonic() - left < 5.0  # not the deadline's doing (100 pieces take 15 s)
        assert ended[-1] == "cancelled", ended
        assert ended.count("chunk") - left_at <= 1, (left_at, ended)
        assert ended.count("chunk") < 100
        assert ended.count("restart") == 0
    finally:
        client.close()
