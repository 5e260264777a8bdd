"""Two live versions of one model: routing by version, the default, and the schema rule."""

import asyncio
import contextlib
import os
import re
from collections.abc import Iterable, Iterator

import aio_pika
import httpx
import pytest

from conveyor.protocol import declared_queues
from tests.integration.stack import SLOW_MODEL, Service, Stack, wait_until


class Versioned(Stack):
    """A stack with versions 1 and 2 of one model, each served by its own worker."""

    model: str
    pids: dict[str, int]


@pytest.fixture(scope="module")
def stack() -> Iterator[Versioned]:
    stack = Versioned(RESULT_TTL="600")
    with stack:
        stack.model = stack.model_name("versioned")
        prefix = f"test:{stack.id}:slow:"
        first = stack.start_worker(
            SLOW_MODEL, stack.model, MODEL_VERSION="1", SLOW_MODEL_COUNTER_PREFIX=prefix
        )
        # Stack.start_worker waits for the default version's instances to grow; version 2
        # becomes the default with one instance, so wait for it by version instead.
        second = Service(
            SLOW_MODEL,
            {
                **_broker_env(),
                "REGISTRY_URL": stack.registry_url,
                "MODEL_NAME": stack.model,
                "MODEL_VERSION": "2",
                "SLOW_MODEL_COUNTER_PREFIX": prefix,
            },
            stack.log_dir,
            "version-2",
        )
        stack.workers.append(second)
        wait_until(lambda: _live_instances(stack, "2") == 1, 60.0, what="version 2 registered")
        stack.pids = {"1": first.pid, "2": second.pid}
        try:
            yield stack
        finally:
            asyncio.run(_delete_queues(declared_queues(stack.model, "2")))


def _broker_env() -> dict[str, str]:
    return {
        "AMQP_URL": os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1/"),
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
    }


def _live_instances(stack: Versioned, version: str) -> int:
    response = httpx.get(f"{stack.registry_url}/models/{stack.model}/versions/{version}")
    return int(response.json()["instances"]) if response.status_code == 200 else 0


async def _delete_queues(names: Iterable[str]) -> None:
    connection = await aio_pika.connect(_broker_env()["AMQP_URL"])
    try:
        for name in names:
            channel = await connection.channel()
            with contextlib.suppress(aio_pika.exceptions.AMQPError):
                await channel.queue_delete(name)
    finally:
        await connection.close()


def served_by(stack: Versioned, query: str) -> int:
    """The pid of the worker that answered a sync predict with ``query``."""
    response = stack.http.post(f"/predict/{stack.model}{query}", json={"data": "v:0"})
    assert response.status_code == 200, response.text
    match = re.match(r"pid=(\d+) ", response.json()["reply"])
    assert match, response.text
    return int(match.group(1))


def test_requests_are_routed_by_version(stack: Versioned) -> None:
    for _ in range(3):
        assert served_by(stack, "?version=1") == stack.pids["1"]
        assert served_by(stack, "?version=2") == stack.pids["2"]


def test_default_is_the_highest_live_version(stack: Versioned) -> None:
    assert {served_by(stack, "") for _ in range(4)} == {stack.pids["2"]}


def test_async_task_records_its_version(stack: Versioned) -> None:
    submitted = stack.http.post(
        f"/predict/{stack.model}?mode=async&version=1", json={"data": "a:0"}
    )
    assert submitted.status_code == 202, submitted.text
    url = submitted.json()["status_url"]
    status = wait_until(
        lambda: (body := stack.http.get(url).json())["status"] != "pending" and body,
        30.0,
        what="async task done",
    )
    assert status["version"] == "1"
    assert status["status"] == "done"


def test_models_view_lists_both_versions(stack: Versioned) -> None:
    listed = stack.http.get(f"/models/{stack.model}")
    assert listed.status_code == 200, listed.text
    versions = {v["version"] for v in listed.json()["versions"]}
    assert versions == {"1", "2"}
    metadata = stack.http.get(f"/v2/models/{stack.model}")
    assert metadata.status_code == 200, metadata.text
    assert set(metadata.json()["versions"]) == {"1", "2"}
    pinned = stack.http.get(f"/v2/models/{stack.model}/versions/1/ready")
    assert pinned.status_code == 200


def test_unknown_version_is_404(stack: Versioned) -> None:
    response = stack.http.post(f"/predict/{stack.model}?version=7", json={"data": "x:0"})
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"]
    v2 = stack.http.get(f"/v2/models/{stack.model}/versions/7")
    assert v2.status_code == 404
    assert "error" in v2.json()


def test_other_schema_under_a_live_version_is_refused(stack: Versioned) -> None:
    # model_b's request message differs from the slow model's: registering it as version 1 of
    # the same model must be refused (409), and the worker must exit saying why.
    worker = Service(
        "models.model_b",
        {
            **_broker_env(),
            "REGISTRY_URL": stack.registry_url,
            "MODEL_NAME": stack.model,
            "MODEL_VERSION": "1",
        },
        stack.log_dir,
        "conflicting-worker",
    )
    try:
        code = wait_until(lambda: worker.process.poll() is not None, 60.0, what="worker exit")
        assert code
        assert worker.process.returncode != 0, worker.log()
        assert "schema" in worker.log().lower(), worker.log()
    finally:
        worker.stop()
    # The live version 1 keeps serving.
    assert served_by(stack, "?version=1") == stack.pids["1"]
