"""A test-only worker that streams, written against the wire protocol alone (docs/protocol.md),
as a worker in another language would be: no ``worker_base``.

It registers ``MODEL_NAME`` version 1 (model_a's messages) announcing the ``stream`` feature,
declares the version's queues, and consumes its fast lane and durable lanes. A request
``{"data": "<pieces>:<seconds>[:<mode>]"}`` streams ``<pieces>`` pieces ``{"reply": "w<i> "}``
(``conveyor.streams.ChunkWriter``), ``<seconds>`` apart, then stores the result, the pieces
combined (``conveyor.results.ResultBackend``), and acknowledges the task. Mode ``restart``: the
first run stops after two pieces and a second run (attempt 2) streams the task again, its first
piece marked with a ``restart``; mode ``late``: the first piece comes a second late. A piece
answered with ``stop`` (the gateway set the stop key) ends the run: the list
``<STREAM_WORKER_PREFIX>stopped`` gets ``<task id>:<index>`` and the task is stored as
cancelled. A task that is not streamed is answered at once.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import signal
import uuid

from aio_pika.abc import AbstractIncomingMessage

from conveyor.amqp import connect_amqp
from conveyor.descriptors import file_descriptor_set
from conveyor.protocol import STREAM_FEATURE, TASK_CONTENT_TYPE, durable_queue
from conveyor.queues import QueueLimits, declare_model_queues
from conveyor.redis import redis_client
from conveyor.registry_api import Registration
from conveyor.registry_client import RegistryClient
from conveyor.results import ResultBackend, now_ms
from conveyor.streams import ChunkAppend, ChunkWriter
from proto import model_a_pb2, task_pb2

VERSION = "1"


class StreamWorker:
    def __init__(self) -> None:
        self.model = os.environ["MODEL_NAME"]
        self.prefix = os.environ.get("STREAM_WORKER_PREFIX", "test:stream-worker:")
        self.redis = redis_client(os.environ["REDIS_URL"], 16)
        self.results = ResultBackend(self.redis)
        self.writer = ChunkWriter(self.redis, max_chunks=10_000, ttl_seconds=600)
        self.registry = RegistryClient(os.environ["REGISTRY_URL"], 5.0)
        self.instance = f"stream-worker-{uuid.uuid4().hex[:8]}"
        self.answering: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        connection = await connect_amqp(os.environ["AMQP_URL"], 30.0)
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=32)
        queues = await declare_model_queues(connection, channel, self.model, VERSION, QueueLimits())
        for queue in (queues.sync, queues.durable, queues.durable_high):
            await queue.consume(self.on_message)
        request, response = (
            model_a_pb2.ModelARequest.DESCRIPTOR,
            model_a_pb2.ModelAResponse.DESCRIPTOR,
        )
        registration = Registration(
            version=VERSION,
            queue=durable_queue(self.model, VERSION),
            request_type=request.full_name,
            response_type=response.full_name,
            descriptor_set=base64.b64encode(file_descriptor_set(request, response)).decode(),
            example_request={"data": "3:0.01"},
            features=[STREAM_FEATURE],
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        while not stop.is_set():
            with contextlib.suppress(Exception):
                if not await self.registry.heartbeat(self.model, self.instance):
                    await self.registry.register(self.model, self.instance, registration)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
        with contextlib.suppress(Exception):
            await self.registry.deregister(self.model, self.instance)
        await connection.close()
        await self.redis.aclose()

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        assert message.content_type == TASK_CONTENT_TYPE
        task = task_pb2.Task.FromString(message.body)
        answering = asyncio.create_task(self.answer(task, message))
        self.answering.add(answering)
        answering.add_done_callback(self.answering.discard)

    async def answer(self, task: task_pb2.Task, message: AbstractIncomingMessage) -> None:
        request = model_a_pb2.ModelARequest.FromString(task.payload)
        pieces_text, _, rest = request.data.partition(":")
        seconds_text, _, mode = rest.partition(":")
        pieces, seconds = int(pieces_text or 1), float(seconds_text or 0)
        result = task_pb2.TaskResult(
            task_id=task.task_id, model=task.model, version=task.version, attempt=task.attempt
        )
        result.started_unix_ms = now_ms()
        if not task.stream:
            reply = "".join(f"w{i} " for i in range(pieces))
            result.response = model_a_pb2.ModelAResponse(reply=reply).SerializeToString()
        else:
            if mode == "late":
                await asyncio.sleep(1.0)
            if mode == "restart":
                await self.stream(task, min(2, pieces), seconds)  # a run that died
                task.attempt = 2
                result.attempt = 2
            combined = await self.stream(task, pieces, seconds)
            if combined is None:
                result.error.code = task_pb2.TaskError.CANCELLED
                result.error.message = "stopped: nobody reads the stream"
            else:
                result.response = model_a_pb2.ModelAResponse(reply=combined).SerializeToString()
        result.finished_unix_ms = now_ms()
        await self.results.store_many([(task, result)], 600)
        await message.ack()

    async def stream(self, task: task_pb2.Task, pieces: int, seconds: float) -> str | None:
        """One run: the pieces, ``seconds`` apart; None when told to stop."""
        combined = ""
        for index in range(pieces):
            if index:
                await asyncio.sleep(seconds)
            text = f"w{index} "
            payload = model_a_pb2.ModelAResponse(reply=text).SerializeToString()
            (outcome,) = await self.writer.append([ChunkAppend(task, payload, index)])
            combined += text
            if outcome.stop:
                await self.redis.rpush(f"{self.prefix}stopped", f"{task.task_id}:{index}")
                return None
        return combined


if __name__ == "__main__":
    asyncio.run(StreamWorker().run())
