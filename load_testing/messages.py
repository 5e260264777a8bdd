"""The ``messages`` scenario: what RabbitMQ and the AMQP clients pay per task, by tasks a message.

Every sync task is one AMQP message today: the gateway publishes it with a confirm, RabbitMQ
queues, delivers and drops it, the worker receives and acknowledges it. How much of that is paid
per *message* rather than per byte decides whether carrying several tasks in one message (tasks
that arrive together for the same model, as a batched worker takes them) is worth its design.

This measures the transport alone, no gateway or worker: one process publishes through
``conveyor.amqp`` (the gateway's connection: confirms, ``mandatory``, transient messages with a
priority and an expiration, ``PUBLISHERS`` concurrent publishers) to a queue declared with the
fast lane's arguments (``conveyor.queues.sync_arguments``), and consumes it on a second
connection (prefetch ``PREFETCH``, each message acknowledged). Each phase moves ``TASKS`` tasks
of ``TASK_BYTES`` bytes, packed ``k`` to a message, for each ``k`` of ``TASKS_PER_MESSAGE``,
alternating for ``--rounds``. Printed per phase: RabbitMQ's CPU per task (from ``/proc``, when it
runs on this machine) and the client process's (publisher and consumer together), and tasks a
second. The queue carries a unique name and is deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import uvloop
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from aiormq import spec

from conveyor.amqp import connect_amqp
from conveyor.queues import QueueLimits, sync_arguments
from load_testing import procstat
from load_testing.bench import brokers, local_broker_pid

__all__ = ["TASKS_PER_MESSAGE", "Phase", "run_messages"]

TASKS = 32_000
TASK_BYTES = 150  # about a serialized model_a Task envelope
TASKS_PER_MESSAGE = (1, 8, 32)
PUBLISHERS = 32
PREFETCH = 64


@dataclass(frozen=True)
class Phase:
    """One phase's cost per task: RabbitMQ's (None if it is not local) and the client's, in us."""

    tasks_per_message: int
    tasks: int
    rabbitmq_us: float | None
    client_us: float
    tasks_per_second: float

    def line(self) -> str:
        """The phase as one printed row."""
        rabbit = "n/a" if self.rabbitmq_us is None else f"{self.rabbitmq_us:.1f}"
        return (
            f"| {self.tasks_per_message} | {self.tasks:,} | {rabbit} | {self.client_us:.1f} "
            f"| {self.tasks_per_second:,.0f} |"
        )


def run_messages(args: argparse.Namespace, out: Path) -> None:
    """The messages scenario (see the module doc)."""
    amqp_url, _ = brokers()
    rabbit_pid = local_broker_pid(amqp_url, 5672)
    where = f"pid {rabbit_pid}" if rabbit_pid else "not local"
    print(
        f"messages: {TASKS:,} tasks of {TASK_BYTES} bytes a phase, {PUBLISHERS} publishers "
        f"with confirms, the fast lane's queue; RabbitMQ {where}"
    )
    print("\n| tasks/message | tasks | RabbitMQ us/task | client us/task | tasks/s |")
    print("|---|---|---|---|---|", flush=True)
    phases = uvloop.run(_measure(amqp_url, rabbit_pid, max(1, args.rounds)))
    print()
    for k in TASKS_PER_MESSAGE[1:]:
        print(_saving(phases, k))


def _saving(phases: list[Phase], k: int) -> str:
    """How much cheaper a task is at ``k`` a message than alone, over all rounds."""

    def mean(values: list[float]) -> float:
        return sum(values) / len(values)

    alone = [p for p in phases if p.tasks_per_message == 1]
    packed = [p for p in phases if p.tasks_per_message == k]
    client = mean([p.client_us for p in alone]) / mean([p.client_us for p in packed])
    line = f"{k} tasks a message: the client {client:.1f}x cheaper a task"
    if all(p.rabbitmq_us is not None for p in alone + packed):
        rabbit = mean([p.rabbitmq_us or 0.0 for p in alone]) / mean(
            [p.rabbitmq_us or 0.0 for p in packed]
        )
        line += f", RabbitMQ {rabbit:.1f}x"
    return line


async def _measure(amqp_url: str, rabbit_pid: int | None, rounds: int) -> list[Phase]:
    publishing = await connect_amqp(amqp_url, 10)
    consuming = await connect_amqp(amqp_url, 10)
    name = f"conveyor-bench-messages-{uuid.uuid4().hex[:8]}"
    phases: list[Phase] = []
    try:
        publisher = await publishing.channel(publisher_confirms=True, on_return_raises=True)
        consumer = await consuming.channel()
        await consumer.set_qos(prefetch_count=PREFETCH)
        limits = QueueLimits(max_queued=TASKS)
        await publisher.declare_queue(name, arguments=sync_arguments(limits))
        for _ in range(rounds):
            for k in TASKS_PER_MESSAGE:
                phase = await _phase(publisher, consumer, name, k, rabbit_pid)
                print(phase.line(), flush=True)
                phases.append(phase)
    finally:
        try:
            channel = await publishing.channel()
            await channel.queue_delete(name)
        finally:
            await publishing.close()
            await consuming.close()
    return phases


async def _phase(
    publisher: AbstractChannel, consumer: AbstractChannel, name: str, k: int, rabbit_pid: int | None
) -> Phase:
    per_publisher = TASKS // k // PUBLISHERS
    tasks = per_publisher * PUBLISHERS * k
    underlay = await publisher.get_underlay_channel()
    properties = spec.Basic.Properties(
        content_type="application/octet-stream", delivery_mode=1, message_id="bench",
        priority=0, expiration="30000",
    )  # fmt: skip
    body = b"t" * (TASK_BYTES * k)
    received = 0
    done = asyncio.Event()

    async def on_message(message: AbstractIncomingMessage) -> None:
        nonlocal received
        await message.ack()
        received += k
        if received >= tasks:
            done.set()

    async def publish() -> None:
        for _ in range(per_publisher):
            await underlay.basic_publish(
                body, routing_key=name, properties=properties, mandatory=True, timeout=10
            )

    queue = await consumer.get_queue(name)
    tag = await queue.consume(on_message)
    rabbit_before = procstat.cpu_seconds(rabbit_pid) if rabbit_pid else 0.0
    client_before, started = _own_cpu(), time.perf_counter()
    try:
        await asyncio.gather(*(publish() for _ in range(PUBLISHERS)))
        await asyncio.wait_for(done.wait(), 120)
    finally:
        await queue.cancel(tag)
    seconds = time.perf_counter() - started
    client = _own_cpu() - client_before
    rabbit = procstat.cpu_seconds(rabbit_pid) - rabbit_before if rabbit_pid else None
    return Phase(
        tasks_per_message=k,
        tasks=tasks,
        rabbitmq_us=None if rabbit is None else rabbit / tasks * 1e6,
        client_us=client / tasks * 1e6,
        tasks_per_second=tasks / seconds,
    )


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
