"""The worker: one model version's lifecycle and intake.

Lifecycle (``Worker.run``): load the model, connect to Redis and RabbitMQ, declare the version's
queues and its delay lane (docs/protocol.md), start the runners (``execution``) with the retries'
scheduler (``retries``), consume, register and keep
registered (``registration``); on SIGTERM or SIGINT stop consuming, let the delivered tasks
finish within ``SHUTDOWN_GRACE``, deregister and close. Intake (``Worker._on_message``): each
delivered message becomes one delivery a task in the local priority queue (``scheduler``),
counted open until it is settled (``settle``); an unusable message is rejected at once.

``run_model`` is the process entry point: one worker, or ``WORKER_PROCESSES`` of them, each
forked and supervised by ``conveyor.process.supervise``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import socket
import time
import uuid

import redis.asyncio as aioredis
import uvloop
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue
from google.protobuf.message import DecodeError

from conveyor import logs, metrics, tracing
from conveyor.amqp import connect_amqp
from conveyor.logs import configure_logging
from conveyor.process import settle_heap, supervise
from conveyor.protocol import TASK_BATCH_CONTENT_TYPE, dead_letter_queue, durable_queue
from conveyor.queues import QueueLimits, declare_legacy_queue, declare_model_queues
from conveyor.redis import redis_client_for
from conveyor.registry_client import RegistryClient
from conveyor.results import ResultBackend, now_ms
from conveyor.stats import STATS_PERIOD, StatsTally
from conveyor.streams import ChunkWriter
from proto import task_pb2
from worker_base.chunk_flush import ChunkFlusher
from worker_base.config import Settings
from worker_base.contracts import check_text_generation
from worker_base.execution import Executor, TaskRunner
from worker_base.model import Model
from worker_base.registration import keep_alive, registration_of
from worker_base.retries import AmqpDelayLane, RetryScheduler
from worker_base.retry_policy import policy_for
from worker_base.scheduler import Scheduler
from worker_base.settle import Pack, Settler, until_redis_answers
from worker_base.streaming import StreamRun
from worker_base.task_spans import delivered

__all__ = ["Worker", "run_model"]

logger = logging.getLogger(__name__)

_CLOSE_TIMEOUT = 2.0
_STOP_MARGIN = 15.0
"""Seconds a worker process may take to stop beyond ``SHUTDOWN_GRACE`` (its bounded closes)."""
_MIN_PREFETCH = 64
_DURABLE_LANES = frozenset({"durable", "durable_high"})


class Worker:
    """Serves one ``Model`` instance: queues, batches, results, registration, shutdown."""

    def __init__(self, model: Model, settings: Settings | None = None) -> None:
        """Raises ``SchemaError`` for a model that sets ``text_generation`` and whose messages
        do not follow that contract (``worker_base.contracts``)."""
        if model.text_generation:
            check_text_generation(model.get_request_format(), model.get_response_format())
        self.model = model
        self.settings = settings or Settings()
        self.concurrency = self.settings.worker_concurrency or model.concurrency
        """Runners: ``WORKER_CONCURRENCY``, else the model's ``concurrency``."""
        self.model_name = self.settings.model_name or model.name
        self.version = self.settings.model_version or model.version
        self.instance_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.batch_size = self.settings.max_batch_size or model.max_batch_size
        delay_ms = self.settings.max_batch_delay_ms
        self.batch_delay = (model.max_batch_delay_ms if delay_ms is None else delay_ms) / 1000
        self.stats = StatsTally(self.model_name, self.version)
        """The tasks answered since their statistics were last written (``conveyor.stats``)."""
        self._stats_late = asyncio.Event()
        self.retry_policy = policy_for(model, self.settings)
        self.executor = Executor(
            model,
            self.model_name,
            self.instance_id,
            self.batch_size,
            self.stats,
            self.retry_policy,
            version=self.version,
        )
        if not self.executor.batching:
            self.batch_size = 1
        # A few prefetched tasks per runner keep the worker busy while acks and new deliveries
        # cross the broker; with only one per runner it waits on that round trip every task.
        self.prefetch = self.settings.worker_prefetch or max(
            _MIN_PREFETCH, self.concurrency * self.batch_size
        )
        self.scheduler = Scheduler()
        self.runner: TaskRunner | None = None
        """Runs what the scheduler hands out; made once connected."""
        self.settler = Settler(self._store)
        self._results: ResultBackend | None = None
        self.metrics = metrics.WorkerMetrics(self.model_name, self.version)
        self.metrics.track_unsettled(lambda: self.settler.unsettled)
        self.chunks: ChunkFlusher | None = None
        """The pieces of this worker's streams, appended together; made once connected."""

    @property
    def queue_name(self) -> str:
        """The durable queue of this model version (what the registry shows)."""
        return durable_queue(self.model_name, self.version)

    async def execute(self, task: task_pb2.Task, redelivered: bool = False) -> task_pb2.TaskResult:
        """Run the model on ``task`` and return its result; never raises for model failures."""
        return await self.executor.execute(task, redelivered)

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set, then finish the delivered tasks and deregister."""
        settings = self.settings
        await self.model.load()
        # The model and the libraries live as long as the process: frozen, they no longer
        # make each full collection a long pause. A worker keeps the interpreter's thresholds:
        # it holds few objects in flight (its prefetch).
        settle_heap(gen0_threshold=None)
        if settings.metrics_port and not metrics.serve(
            self.metrics.registry, settings.metrics_port, settings.metrics_host
        ):
            logger.warning("port %d is taken: no GET /metrics", settings.metrics_port)
        client = redis_client_for(settings, self.concurrency + 4)
        self._results = ResultBackend(client)
        self.executor.redis = client
        writer = ChunkWriter(client, settings.max_stream_chunks, settings.default_result_ttl)
        self.chunks = ChunkFlusher(writer.append)
        self.executor.streams = StreamRun(
            self.model, self.chunks, settings.max_stream_chunks, self.metrics
        )
        connection = await connect_amqp(settings.amqp_url, settings.broker_connect_timeout)
        headers = (
            {"Authorization": f"Bearer {settings.registry_key}"} if settings.registry_key else None
        )
        registry = RegistryClient(settings.registry_url, settings.registry_timeout, headers=headers)
        tasks: list[asyncio.Task[None]] = []
        consumers: list[tuple[AbstractQueue, str]] = []
        retries: RetryScheduler | None = None
        try:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=self.prefetch)
            limits = QueueLimits(settings.max_queued_tasks, settings.max_deliveries)
            delays = self.retry_policy.buckets()
            queues = await declare_model_queues(
                connection, channel, self.model_name, self.version, limits, delays
            )
            # Its own channel: a publish the broker refuses closes that channel, not the
            # consumers'.
            retry_channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
            delay_lane = await AmqpDelayLane.open(
                retry_channel, self.model_name, self.version, delays
            )
            retries = RetryScheduler(delay_lane, self.settler, self._results, self.metrics)
            self.runner = runner = TaskRunner(
                self.scheduler,
                self.executor,
                self.settler,
                self._results,
                self.metrics,
                (self.batch_size, self.batch_delay),
                running_seconds=max(1, int(settings.shutdown_grace) + 3600),
                retries=retries,
            )
            lanes: list[tuple[str, AbstractQueue]] = [
                ("sync", queues.sync),
                ("durable_high", queues.durable_high),
                ("durable", queues.durable),
            ]
            legacy = await declare_legacy_queue(connection, channel, self.model_name)
            if legacy is not None:
                logger.info("draining %s, the queue of an earlier release", legacy.name)
                lanes.append(("legacy", legacy))
            for lane, queue in lanes:
                tag = await queue.consume(functools.partial(self._on_message, lane))
                consumers.append((queue, tag))
            for _ in range(self.concurrency):
                tasks.append(asyncio.create_task(runner.serve()))
            tasks.append(asyncio.create_task(self._write_late_stats(client)))
            registering = asyncio.create_task(
                keep_alive(
                    registry,
                    self.model_name,
                    self.instance_id,
                    registration_of(
                        self.model,
                        self.version,
                        self.queue_name,
                        max_batch_size=self.batch_size if self.executor.batching else 0,
                    ),
                    settings.heartbeat_interval,
                )
            )
            tasks.append(registering)
            logger.info(
                "serving %s version %s (batch %d, delay %.0f ms, concurrency %d, prefetch %d)",
                self.model_name,
                self.version,
                self.batch_size,
                self.batch_delay * 1000,
                self.concurrency,
                self.prefetch,
            )
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({stopping, registering}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if registering.done():
                registering.result()  # the registry refused this worker: raise why
            logger.info("stopping: no new tasks, finishing %d delivered", self.settler.unsettled)
            for queue, tag in consumers:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(queue.cancel(tag), _CLOSE_TIMEOUT)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.settler.drained(), settings.shutdown_grace)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if retries is not None:
                await retries.close()
            if self.chunks is not None:
                await self.chunks.close()
            await self.settler.close()
            last = self.stats.take()
            if last is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(last.write(client), _CLOSE_TIMEOUT)
            # Bounded: when the whole stack stops at once, registry and broker may be gone.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    registry.deregister(self.model_name, self.instance_id), _CLOSE_TIMEOUT
                )
            await registry.aclose()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), _CLOSE_TIMEOUT)
            await client.aclose()
            await self.model.close()

    async def _on_message(self, lane: str, message: AbstractIncomingMessage) -> None:
        """Take one delivered message: a ``Task`` becomes one delivery in the scheduler, a
        ``TaskBatch`` one delivery a task; an unusable message is rejected, a task that killed
        its workers too often dead-lettered."""
        self.settler.opened(message)
        if message.content_type == TASK_BATCH_CONTENT_TYPE:
            await self._on_packed(lane, message)
            return
        self.metrics.tasks_per_message.observe(1)
        task = task_pb2.Task()
        try:
            task.ParseFromString(message.body)
        except DecodeError:
            logger.error("rejecting a message on %s that is not a conveyor.v1.Task", lane)
            await self.settler.reject(message)
            return
        if not task.result_key:
            logger.error("rejecting task %s without a result key", task.task_id)
            await self.settler.reject(message)
            return
        if lane in _DURABLE_LANES and _deliveries(message) >= self.settings.max_deliveries:
            await self._dead_letter(task, message)
            return
        span = None
        if tracing.tracer is not None and task.trace_context:
            span = self._delivered(task, message, time.time_ns())
        delivery = self.scheduler.make(task, message, lane, span=span)
        if self.runner is None or not await self.runner.run_now(delivery):
            await self.scheduler.put(delivery)

    def _delivered(
        self, task: task_pb2.Task, message: AbstractIncomingMessage, received_ns: int
    ) -> tracing.Span | None:
        """A traced task's queue span, ended now, and its process span, begun now."""
        queue = message.routing_key or self.queue_name
        return delivered(task, queue, self.model_name, self.version, received_ns)

    async def _on_packed(self, lane: str, message: AbstractIncomingMessage) -> None:
        """Take the tasks of a ``TaskBatch`` message, each a delivery of its own that shares
        the message (``Pack``): it is settled once all of them are."""
        batch = task_pb2.TaskBatch()
        try:
            if lane != "sync":
                raise DecodeError(f"a TaskBatch on the {lane} lane (only the fast lane has them)")
            batch.ParseFromString(message.body)
        except DecodeError as e:
            logger.error("rejecting a message on %s that is not a usable TaskBatch: %s", lane, e)
            await self.settler.reject(message)
            return
        self.metrics.tasks_per_message.observe(len(batch.tasks))
        tasks = [task for task in batch.tasks if task.result_key]
        if len(tasks) < len(batch.tasks):
            logger.error("dropping %d tasks without a result key", len(batch.tasks) - len(tasks))
        if not tasks:
            await self.settler.reject(message)
            return
        pack = Pack(message, len(tasks))
        received_ns = time.time_ns()
        for task in tasks:
            span = None
            if tracing.tracer is not None and task.trace_context:
                span = self._delivered(task, message, received_ns)
            await self.scheduler.put(self.scheduler.make(task, message, lane, pack, span))

    async def _dead_letter(self, task: task_pb2.Task, message: AbstractIncomingMessage) -> None:
        """Answer a task that killed its workers too often, and move it to the dead letters."""
        result = self.executor.result_for(task, redelivered=True)
        result.error.code = task_pb2.TaskError.DEAD_LETTERED
        result.error.message = (
            f"workers died running this task {_deliveries(message)} times; it was moved to "
            f"{dead_letter_queue(self.model_name)}"
        )
        result.finished_unix_ms = now_ms()
        with logs.bound(task.request_id, task.task_id, self.model_name, self.version):
            logger.error("dead-lettering task %s: %s", task.task_id, result.error.message)
        self.metrics.dead_lettered.inc()
        await self.settler.dead_letter(message, task, result)

    async def _store(self, items: list[tuple[task_pb2.Task, task_pb2.TaskResult]]) -> None:
        """The settler's store: the result backend ``run`` connected, retried while Redis is
        unreachable. The statistics of every task answered so far go in the same round trip
        (taken before the first ``await``, so a flush carries those of its own tasks), unless
        some were written less than ``STATS_PERIOD`` ago: ``_write_late_stats`` writes them."""
        assert self._results is not None
        results, settings = self._results, self.settings
        stats = self.stats.take(time.monotonic(), STATS_PERIOD)
        if stats is None and self.stats.pending:
            self._stats_late.set()

        async def call() -> list[bool]:
            return await results.store_many(
                items,
                settings.default_result_ttl,
                settings.redis_wait_replicas,
                settings.redis_wait_timeout_ms,
                stats,
            )

        await until_redis_answers(call)

    async def _write_late_stats(self, client: aioredis.Redis) -> None:
        """Write, on their own, the statistics a store of results left for later: at most
        ``STATS_PERIOD`` after, unless a store carried them meanwhile. Runs until cancelled."""
        while True:
            await self._stats_late.wait()
            await asyncio.sleep(STATS_PERIOD)
            self._stats_late.clear()
            delta = self.stats.take(time.monotonic(), STATS_PERIOD)
            if delta is None:
                if self.stats.pending:  # a store wrote some just now: their turn comes next
                    self._stats_late.set()
                continue
            await until_redis_answers(functools.partial(delta.write, client))


def _deliveries(message: AbstractIncomingMessage) -> int:
    """How often the broker delivered this message before (quorum queues count it)."""
    headers = message.headers or {}
    count = headers.get("x-delivery-count", 0)
    return int(count) if isinstance(count, int | str) and str(count).isdigit() else 0


def run_model(model: Model, settings: Settings | None = None) -> None:
    """Run ``model`` until SIGTERM or SIGINT; the process entry point of a model worker.

    With ``WORKER_PROCESSES`` above 1 this process forks that many worker processes, each its
    own consumer and registry instance, restarts any that dies, and exits non-zero if one fails
    to stop cleanly (``conveyor.process.supervise``).
    """
    settings = settings or Settings()
    name = settings.model_name or model.name
    configure_logging(name, settings.log_format, settings.log_level)
    if settings.worker_processes == 1:
        _serve(model, settings)
        return
    grace = settings.shutdown_grace + _STOP_MARGIN
    code = supervise(settings.worker_processes, functools.partial(_serve_place, model, settings),
                     name, grace)  # fmt: skip
    if code:
        raise SystemExit(code)


def _serve_place(model: Model, settings: Settings, number: int) -> None:
    """Worker process ``number`` (from 1) of several: its metrics on ``METRICS_PORT`` + its
    number - 1, so each process of a host has its own."""
    if settings.metrics_port:
        settings = settings.model_copy(update={"metrics_port": settings.metrics_port + number - 1})
    _serve(model, settings)


def _serve(model: Model, settings: Settings) -> None:
    """One worker process: serve until SIGTERM or SIGINT."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await Worker(model, settings).run(stop)

    # In the serving process (after the fork): the span exporter runs a thread.
    tracing.configure(tracing.worker_service(settings.model_name or model.name))
    try:
        # uvloop: the event loop's own overhead is a large share of a light model's work per
        # task.
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(main())
    finally:
        tracing.shutdown()  # the spans still held leave before the process does
