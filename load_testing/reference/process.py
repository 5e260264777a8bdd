"""Starting and stopping the reference system (gateway + worker) for the benchmark."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import aio_pika
import redis

from load_testing.reference.spawn import Running, spawn, stop_all, wait_answering
from load_testing.stack import free_port

__all__ = ["Reference"]

PROBE = b'{"data": "example"}'


@dataclass
class Reference(Running):
    """The reference gateway and worker as processes, on the benchmark's brokers."""

    log_dir: Path
    amqp_url: str
    redis_url: str
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    port: int = field(default_factory=free_port)
    result_ttl: int = 60
    """Seconds the worker keeps each result in Redis (big bodies want a short time)."""
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """The predict URL."""
        return f"http://127.0.0.1:{self.port}/predict"

    def _spawn(self, name: str, module: str) -> None:
        self.processes[name] = spawn(
            module,
            self.log_dir / f"reference_{name}.log",
            {
                "AMQP_URL": self.amqp_url,
                "REDIS_URL": self.redis_url,
                "REF_TAG": self.tag,
                "REF_PORT": str(self.port),
                "REF_RESULT_TTL": str(self.result_ttl),
            },
        )

    def start(self, timeout: float = 120.0) -> Self:
        """Start both processes and wait until a predict answers."""
        try:
            self._spawn("worker", "load_testing.reference.worker")
            self._spawn("gateway", "load_testing.reference.gateway")
            named = {f"reference {name}": p for name, p in self.processes.items()}
            wait_answering(self.url, PROBE, named, timeout, self.log_dir)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """SIGTERM both, then delete the queue and the result keys."""
        stop_all(self.processes.values())
        self.processes.clear()
        self._clean()

    def _clean(self) -> None:
        client = redis.Redis.from_url(self.redis_url)
        try:
            prefix = f"reference_results_{self.tag}:"
            keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
            for start in range(0, len(keys), 1000):
                client.delete(*keys[start : start + 1000])
        finally:
            client.close()

        async def delete_queue() -> None:
            connection = await aio_pika.connect(self.amqp_url)
            async with connection:
                channel = await connection.channel()
                await channel.queue_delete(f"reference_{self.tag}")

        asyncio.run(delete_queue())
