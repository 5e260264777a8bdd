"""The worker: consumes a model's queue, runs the model, stores results, stays registered."""

import asyncio
import contextlib
import logging
import os
import signal
import socket
import uuid

import redis.asyncio as aioredis
from aio_pika.abc import AbstractIncomingMessage
from google.protobuf.message import DecodeError

from conveyor.amqp import connect_amqp, declare_model_queue
from conveyor.protocol import queue_name
from conveyor.registry_client import RegistryClient
from conveyor.results import ResultBackend, now_ms
from proto import task_pb2
from worker_base.config import Settings
from worker_base.exceptions import InvalidRequest
from worker_base.model import Model
from worker_base.registration import keep_alive, registration_of

logger = logging.getLogger(__name__)

_STORE_RETRY_DELAY = 1.0
_CLOSE_TIMEOUT = 2.0


class Worker:
    """Serves one ``Model`` instance: queue consumption, results, registration, shutdown."""

    def __init__(self, model: Model, settings: Settings | None = None) -> None:
        self.model = model
        self.settings = settings or Settings()
        self.model_name = self.settings.model_name or model.name
        self.instance_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.queue_name = queue_name(self.model_name)
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._store: ResultBackend | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set, then drain in-flight tasks and deregister."""
        settings = self.settings
        await self.model.load()
        redis_client = aioredis.from_url(settings.redis_url)
        self._store = ResultBackend(redis_client)
        connection = await connect_amqp(settings.amqp_url, settings.broker_connect_timeout)
        registry = RegistryClient(settings.registry_url, settings.registry_timeout)
        heartbeat: asyncio.Task[None] | None = None
        try:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=settings.worker_prefetch)
            queue = await declare_model_queue(channel, self.model_name)
            consumer_tag = await queue.consume(self._on_message)
            registration = registration_of(self.model, self.queue_name)
            heartbeat = asyncio.create_task(
                keep_alive(
                    registry,
                    self.model_name,
                    self.instance_id,
                    registration,
                    settings.heartbeat_interval,
                )
            )
            logger.info("serving %s on queue %s", self.model_name, self.queue_name)
            await stop.wait()
            logger.info("stopping: no new tasks, draining %d in flight", self._in_flight)
            await queue.cancel(consumer_tag)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), settings.shutdown_grace)
        finally:
            if heartbeat is not None:
                heartbeat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await heartbeat
            # Bounded: when the whole stack stops at once, registry and broker may be gone.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    registry.deregister(self.model_name, self.instance_id), _CLOSE_TIMEOUT
                )
            await registry.aclose()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), _CLOSE_TIMEOUT)
            await redis_client.aclose()
            await self.model.close()

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        self._in_flight += 1
        self._idle.clear()
        try:
            await self._handle(message)
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    async def _handle(self, message: AbstractIncomingMessage) -> None:
        assert self._store is not None
        task = task_pb2.Task()
        try:
            task.ParseFromString(message.body)
        except DecodeError:
            logger.error("dropping a message that is not a conveyor.v1.Task")
            await message.reject(requeue=False)
            return
        if not task.result_key:
            logger.error("dropping task %s without a result key", task.task_id)
            await message.reject(requeue=False)
            return
        try:
            if await self._store.exists(task):
                # Redelivered after its result was stored: do not run it twice.
                await self._store.notify(task)
                await message.ack()
                return
            result = await self.execute(task, redelivered=bool(message.redelivered))
            await self._store.store(task, result, self.settings.default_result_ttl)
        except (aioredis.RedisError, OSError):
            logger.exception("cannot store the result of %s; requeueing", task.task_id)
            await asyncio.sleep(_STORE_RETRY_DELAY)
            await message.nack(requeue=True)
            return
        await message.ack()

    async def execute(self, task: task_pb2.Task, redelivered: bool = False) -> task_pb2.TaskResult:
        """Run the model on ``task`` and return its result; never raises for model failures."""
        result = task_pb2.TaskResult(
            task_id=task.task_id,
            model=self.model_name,
            worker_id=self.instance_id,
            redelivered=redelivered,
        )
        if task.deadline_unix_ms and now_ms() > task.deadline_unix_ms:
            result.error.code = task_pb2.TaskError.DEADLINE_EXCEEDED
            result.error.message = "the deadline passed before a worker took the task"
        else:
            await self._run_model(task, result)
        result.finished_unix_ms = now_ms()
        return result

    async def _run_model(self, task: task_pb2.Task, result: task_pb2.TaskResult) -> None:
        expected = self.model.get_response_format().full_name
        try:
            response = await self.model.process_request(task.payload)
        except InvalidRequest as e:
            result.error.code = task_pb2.TaskError.INVALID_ARGUMENT
            result.error.message = str(e)
            result.error.field = e.field
        except DecodeError as e:
            result.error.code = task_pb2.TaskError.BAD_TASK
            result.error.message = f"cannot decode the request payload: {e}"
        except Exception as e:
            logger.exception("model %s failed on task %s", self.model_name, task.task_id)
            result.error.code = task_pb2.TaskError.MODEL_ERROR
            result.error.message = f"{type(e).__name__}: {e}"
        else:
            if response.DESCRIPTOR.full_name != expected:
                result.error.code = task_pb2.TaskError.MODEL_ERROR
                result.error.message = (
                    f"model returned {response.DESCRIPTOR.full_name}, expected {expected}"
                )
            else:
                result.response = response.SerializeToString()


def run_model(model: Model, settings: Settings | None = None) -> None:
    """Run ``model`` as a worker process until SIGTERM or SIGINT; the process entry point."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await Worker(model, settings).run(stop)

    asyncio.run(main())
