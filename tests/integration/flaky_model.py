"""A test-only model that fails as told, and records its runs in Redis.

Request ``{"data": "<tag>:<failures>"}``: the first ``<failures>`` runs of ``<tag>`` raise
``RetryableError``, later ones reply ``tag=<tag> run=<n>``; ``<failures>`` may also be
``always`` (every run raises ``RetryableError``) or ``crash`` (every run raises a plain
``ValueError``, which is never retried). Each run appends its start (Unix milliseconds) to the
Redis list ``<FLAKY_MODEL_COUNTER_PREFIX><tag>:runs``, so tests can count the runs and measure
the backoff between them. Run with ``python -m tests.integration.flaky_model``.
"""

import os
import time

import redis.asyncio as aioredis

from proto import model_a_pb2
from worker_base import MessageDescriptor, Model, RetryableError, run_model


class FlakyModel(Model):
    """Fails retryably the first runs of a tag, then replies with the run's number."""

    name = "flaky"

    def __init__(self) -> None:
        self._prefix = os.environ.get("FLAKY_MODEL_COUNTER_PREFIX", "test:flaky:")
        self._redis = aioredis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))

    async def process_request(self, body: bytes) -> model_a_pb2.ModelAResponse:
        request = model_a_pb2.ModelARequest.FromString(body)
        tag, _, failures = request.data.rpartition(":")
        run = await self._redis.rpush(f"{self._prefix}{tag}:runs", int(time.time() * 1000))
        if failures == "crash":
            raise ValueError(f"{tag} is broken for good")
        if failures == "always" or run <= int(failures):
            raise RetryableError(f"run {run} of {tag} failed")
        return model_a_pb2.ModelAResponse(reply=f"tag={tag} run={run}")

    def get_request_format(self) -> MessageDescriptor:
        return model_a_pb2.ModelARequest.DESCRIPTOR

    def get_response_format(self) -> MessageDescriptor:
        return model_a_pb2.ModelAResponse.DESCRIPTOR

    async def close(self) -> None:
        await self._redis.aclose()


if __name__ == "__main__":
    run_model(FlakyModel())
