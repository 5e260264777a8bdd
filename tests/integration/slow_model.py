"""A test-only model that sleeps, and counts its runs in Redis.

Request ``{"data": "<tag>:<seconds>"}``; the reply names the worker process. Halfway through it
reports progress 0.5 ("halfway"). Redis counters
``<SLOW_MODEL_COUNTER_PREFIX><tag>:started`` / ``:finished`` count runs, so tests can see a
task run twice but complete once, and the list ``<SLOW_MODEL_COUNTER_PREFIX>order`` holds the tags
in the order their runs finished. Run with ``python -m tests.integration.slow_model``.
"""

import asyncio
import os

import redis.asyncio as aioredis

from proto import model_a_pb2
from worker_base import MessageDescriptor, Model, run_model


class SlowModel(Model):
    """Sleeps for the requested seconds, then replies with its pid."""

    name = "slow"

    def __init__(self) -> None:
        self._prefix = os.environ.get("SLOW_MODEL_COUNTER_PREFIX", "test:slow:")
        self._redis = aioredis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))

    async def process_request(self, body: bytes) -> model_a_pb2.ModelAResponse:
        request = model_a_pb2.ModelARequest()
        request.ParseFromString(body)
        tag, _, seconds = request.data.rpartition(":")
        await self._redis.incr(f"{self._prefix}{tag}:started")
        await asyncio.sleep(float(seconds) / 2)
        await self.report_progress(0.5, "halfway")
        await asyncio.sleep(float(seconds) / 2)
        await self._redis.incr(f"{self._prefix}{tag}:finished")
        await self._redis.rpush(f"{self._prefix}order", tag)
        return model_a_pb2.ModelAResponse(reply=f"pid={os.getpid()} tag={tag}")

    def get_request_format(self) -> MessageDescriptor:
        return model_a_pb2.ModelARequest.DESCRIPTOR

    def get_response_format(self) -> MessageDescriptor:
        return model_a_pb2.ModelAResponse.DESCRIPTOR

    async def close(self) -> None:
        await self._redis.aclose()


if __name__ == "__main__":
    run_model(SlowModel())
