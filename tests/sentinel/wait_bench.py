"""What ``WAIT`` costs a worker's result write: the same stores with and without it.

Starts a private Redis primary with one replica on this machine, then stores results the way a
worker does (``ResultBackend.store_many``: one Lua call per result, one round trip per batch),
``--tasks`` times per mode, ``--concurrency`` writers at once, first without ``WAIT`` (the
baseline, same run), then with ``WAIT 1``. Prints throughput and latency percentiles per mode.

    bazel run //tests/sentinel:wait_bench -- --tasks 3000 --concurrency 8 --batch 1
"""

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from conveyor.redis import redis_client
from conveyor.results import ResultBackend
from proto import task_pb2
from tests.sentinel.replicas import PrimaryWithReplica


async def _run(url: str, tasks: int, concurrency: int, batch: int, replicas: int) -> list[float]:
    client = redis_client(url, concurrency + 2)
    backend = ResultBackend(client)
    prefix = f"bench:wait:{uuid.uuid4().hex[:8]}:"
    latencies: list[float] = []
    counter = iter(range(tasks // batch))

    async def writer() -> None:
        for index in counter:
            items = []
            for offset in range(batch):
                task_id = f"{index}-{offset}"
                task = task_pb2.Task(task_id=task_id, result_key=prefix + task_id)
                items.append((task, task_pb2.TaskResult(task_id=task_id, response=b"x" * 64)))
            started = time.perf_counter()
            await backend.store_many(items, ttl=60, replicas=replicas, wait_ms=1000)
            latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(writer() for _ in range(concurrency)))
    await client.aclose()
    return latencies


def _report(label: str, latencies: list[float], elapsed: float, batch: int) -> None:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    print(
        f"{label:<16} {len(latencies) * batch / elapsed:9.0f} results/s   "
        f"p50 {statistics.median(ordered) * 1000:6.2f} ms   p99 {p99 * 1000:6.2f} ms"
    )


def main() -> None:
    """Parse the options, run both modes, print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--batch", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="conveyor-wait-") as root:
        servers = PrimaryWithReplica(Path(root))
        try:
            print(
                f"{args.tasks} results, {args.concurrency} writers, batch {args.batch}, "
                "primary + 1 replica on this machine"
            )
            for label, replicas in (("without WAIT", 0), ("with WAIT 1", 1)) * 2:
                started = time.perf_counter()
                latencies = asyncio.run(
                    _run(servers.primary.url, args.tasks, args.concurrency, args.batch, replicas)
                )
                _report(label, latencies, time.perf_counter() - started, args.batch)
        finally:
            servers.close()


if __name__ == "__main__":
    main()
