"""Idempotent async submits over two gateways on one set of brokers (``Idempotency-Key``).

200 concurrent submits with 20 distinct keys, alternating between the gateways, make exactly
20 tasks: every submit of a key answers the same task id, and the model runs 20 times.
"""

import asyncio
import os
from collections.abc import Iterator

import httpx
import pytest

from tests.gateways.second import second_gateway as second
from tests.integration.stack import Served, wait_until

KEYS = 20
SUBMITS = 200


@pytest.fixture(scope="module")
def stack() -> Iterator[Served]:
    with Served(RESULT_TTL="600") as stack:
        yield stack


@pytest.fixture(scope="module")
def second_gateway(stack: Served) -> Iterator[str]:
    with second(stack) as (url, _):
        yield url


async def _submit_all(urls: list[str], model: str, run: str) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=60.0) as client:
        return await asyncio.gather(
            *(
                client.post(
                    f"{urls[i % len(urls)]}/predict/{model}?mode=async",
                    json={"data": f"request {i % KEYS}"},
                    headers={"Idempotency-Key": f"{run}-key-{i % KEYS}"},
                )
                for i in range(SUBMITS)
            )
        )


def test_concurrent_submits_over_two_gateways_make_one_task_per_key(
    stack: Served, second_gateway: str
) -> None:
    run = os.urandom(4).hex()
    answers = asyncio.run(_submit_all([stack.api_url, second_gateway], stack.model_a, run))
    assert [a.status_code for a in answers] == [202] * SUBMITS, [a.text for a in answers][:3]
    by_key: dict[int, set[str]] = {}
    for i, answer in enumerate(answers):
        by_key.setdefault(i % KEYS, set()).add(answer.json()["task_id"])
    assert all(len(ids) == 1 for ids in by_key.values()), by_key
    task_ids = {next(iter(ids)) for ids in by_key.values()}
    assert len(task_ids) == KEYS

    def all_done() -> bool:
        states = [stack.http.get(f"/tasks/{t}").json()["status"] for t in task_ids]
        return states == ["done"] * KEYS

    wait_until(all_done, 60.0, what="every task done")
    for key in range(KEYS):
        [task_id] = by_key[key]
        result = stack.http.get(f"/tasks/{task_id}").json()["result"]
        assert result == {"reply": f"Processed message: request {key}"}

    # The model ran once per key: the workers' statistics count 20 successful requests.
    def counted() -> int:
        stats = stack.http.get(f"/v2/models/{stack.model_a}/stats").json()
        return int(stats["model_stats"][0]["inference_stats"]["success"]["count"])

    wait_until(lambda: counted() >= KEYS, 10.0, what="20 requests counted")
    assert counted() == KEYS


def test_a_key_reused_for_another_request_is_a_422_naming_it(
    stack: Served, second_gateway: str
) -> None:
    key = {"Idempotency-Key": f"reuse-{os.urandom(4).hex()}"}
    first = stack.http.post(
        f"/predict/{stack.model_a}?mode=async", json={"data": "one"}, headers=key
    )
    assert first.status_code == 202, first.text
    again = httpx.post(
        f"{second_gateway}/predict/{stack.model_a}?mode=async",
        json={"data": "one"},
        headers=key,
        timeout=30.0,
    )
    assert again.status_code == 202 and again.json()["task_id"] == first.json()["task_id"]
    other = stack.http.post(
        f"/predict/{stack.model_a}?mode=async", json={"data": "two"}, headers=key
    )
    assert other.status_code == 422, other.text
    error = other.json()["error"]
    assert error["field"] == "Idempotency-Key" and first.json()["task_id"] in error["message"]
    bad = stack.http.post(
        f"/predict/{stack.model_a}?mode=async",
        json={"data": "x"},
        headers={"Idempotency-Key": "has space"},
    )
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "Idempotency-Key"
