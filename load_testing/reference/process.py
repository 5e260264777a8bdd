"""Starting and stopping the reference system (gateway + worker) for the benchmark."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import aio_pika
import redis

from load_testing.stack import StackError, free_port

__all__ = ["Reference"]


@dataclass
class Reference:
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
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
            "AMQP_URL": self.amqp_url,
            "REDIS_URL": self.redis_url,
            "REF_TAG": self.tag,
            "REF_PORT": str(self.port),
            "REF_RESULT_TTL": str(self.result_ttl),
        }
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with (self.log_dir / f"reference_{name}.log").open("wb") as log:
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", module], env=env, stdout=log, stderr=subprocess.STDOUT
            )

    def _answers(self) -> bool:
        request = urllib.request.Request(
            self.url, data=b'{"data": "example"}', headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def start(self, timeout: float = 120.0) -> Reference:
        """Start both processes and wait until a predict answers."""
        try:
            self._spawn("worker", "load_testing.reference.worker")
            self._spawn("gateway", "load_testing.reference.gateway")
            deadline = time.monotonic() + timeout
            while not self._answers():
                for name, process in self.processes.items():
                    if process.poll() is not None:
                        raise StackError(f"reference {name} exited; see {self.log_dir}")
                if time.monotonic() > deadline:
                    raise StackError(f"the reference did not answer; see {self.log_dir}")
                time.sleep(0.25)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """SIGTERM both, then delete the queue and the result keys."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
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

    def __enter__(self) -> Reference:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
