"""Question: what does one 429 past ``MAX_INFLIGHT`` cost the gateway, and how much of that
could any gateway code remove?

Answer: a refusal costs the gateway about twice what a bare protocol pays to parse the same
request and write the same bytes on the same event loop, so at most about half of it is the
gateway's to remove; and that floor (the wake-up, the ``recv``, the parse and the ``send`` on
loopback) is by itself above what a refusal may cost
for 90 % goodput at three times capacity on two shared cores with the clients on loopback. So
that goodput goal cannot be met on such a machine whatever the gateway does; it needs clients
on other machines. The figures, and the savings they led to, are in docs/performance.md.

How: a stack starts with ``MAX_INFLIGHT=1`` and model_a's worker stopped (``SIGSTOP``), so the
one admitted request holds the only place until its ``?timeout=5`` runs out and nearly every
answer is a refusal. wrk drives the gateway in two phases: the overload scenario's shape
(``--overload-connections`` connections, each pausing, together offering ``--refusal-rate`` a
second: each wake-up finds one or two requests), then 64 busy connections without pauses. Then
the same phases against the floor: a bare ``asyncio.Protocol`` on uvloop and httptools, in a
thread of this process, answering every request with the bytes of a refusal the gateway sent.
Printed per phase: answers a second by status, the server's cores and CPU per answer, and
wrk's; then the gateway's cost per refusal as a multiple of the floor's. The worker is resumed
at the end (and on any error).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import cast
from urllib.parse import urlsplit

import httptools
import uvloop

from load_testing import procstat, wrk
from load_testing.overload import SYNC_TIMEOUT_QUERY
from load_testing.stack import Stack, StackError, environment
from load_testing.targets import brokers

__all__ = ["BUSY_CONNECTIONS", "FloorServer", "gateway_refusal", "main", "run_refusals"]

BUSY_CONNECTIONS = 64


def run_refusals(args: argparse.Namespace, out: Path) -> None:
    """The experiment (see the module doc)."""
    amqp_url, redis_url = brokers()
    phases = (
        (
            f"{args.overload_connections} pausing",
            args.overload_connections,
            1000 * args.overload_connections / args.refusal_rate,
        ),
        (f"{BUSY_CONNECTIONS} busy", BUSY_CONNECTIONS, 0.0),
    )
    with (
        environment(MAX_INFLIGHT="1"),
        Stack(out / "logs", amqp_url=amqp_url, redis_url=redis_url) as stack,
    ):
        url = f"{stack.api_url}/predict/{stack.model_a}{SYNC_TIMEOUT_QUERY}"
        wrk.run(url, seconds=args.warmup, connections=args.connections)
        api, worker = stack.services["api"].pid, stack.services["model_a"].pid
        print(f"refusals: MAX_INFLIGHT=1, model_a's worker stopped, {args.seconds:g} s a phase")
        print(_HEADER, flush=True)
        os.kill(worker, signal.SIGSTOP)
        try:
            answer = gateway_refusal(url)
            gateway = {
                name: _phase(
                    f"gateway, {name}",
                    url,
                    args.seconds,
                    connections,
                    delay_ms,
                    lambda: procstat.group_cpu_seconds(api),
                )
                for name, connections, delay_ms in phases
            }
        finally:
            os.kill(worker, signal.SIGCONT)
    with FloorServer(answer) as floor:
        url = f"{floor.url}/predict/model_a{SYNC_TIMEOUT_QUERY}"
        wrk.run(url, seconds=args.warmup, connections=args.connections)
        bare = {
            name: _phase(
                f"bare protocol, {name}",
                url,
                args.seconds,
                connections,
                delay_ms,
                floor.cpu_seconds,
            )
            for name, connections, delay_ms in phases
        }
    print()
    for name, total in gateway.items():
        print(f"{name}: the gateway's refusal {total:.1f} us, a bare protocol's "
              f"{bare[name]:.1f} us: {total / bare[name]:.2f}x the floor")  # fmt: skip


_HEADER = """
| server, phase | answers/s | statuses | server cores | server us/answer | wrk us/answer |
|---|---|---|---|---|---|"""


def _phase(
    name: str,
    url: str,
    seconds: float,
    connections: int,
    delay_ms: float,
    cpu_seconds: Callable[[], float],
) -> float:
    """One phase: wrk for ``seconds`` at ``url``; prints its row and returns the server's CPU
    per answer in us (``cpu_seconds`` reads the server's CPU so far)."""
    server_before = cpu_seconds()
    wrk_before = procstat.children_cpu_seconds()
    result = wrk.run(url, seconds=seconds, connections=connections, delay_ms=delay_ms,
                     timeout_s=15)  # fmt: skip
    server = cpu_seconds() - server_before
    wrk_used = procstat.children_cpu_seconds() - wrk_before
    answers = max(1, result.requests)
    per_answer = server * 1e6 / answers
    statuses = ", ".join(f"{s}: {n:,}" for s, n in sorted(result.statuses.items()))
    print(f"| {name} | {result.rps:,.0f} | {statuses} | {server / result.duration_s:.2f} | "
          f"{per_answer:.1f} | {wrk_used * 1e6 / answers:.1f} |", flush=True)  # fmt: skip
    return per_answer


def _request(url: str) -> bytes:
    """The predict request wrk sends (``load_testing/post.lua``), as bytes for ``url``."""
    parts = urlsplit(url)
    body = b'{"data": "example"}'
    target = f"{parts.path}?{parts.query}" if parts.query else parts.path
    head = (
        f"POST {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def _read_answer(connection: socket.socket) -> bytes:
    """One whole HTTP answer (head and a ``Content-Length`` body) read from ``connection``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            raise StackError(f"the gateway closed the connection: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = connection.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body[:length]


def gateway_refusal(url: str) -> bytes:
    """The bytes of one refusal as the gateway at ``url`` sends it: with ``MAX_INFLIGHT=1`` and
    its worker stopped, a first request holds the only place and a second is refused."""
    parts = urlsplit(url)
    address = (parts.hostname or "127.0.0.1", parts.port or 80)
    request = _request(url)
    with (
        socket.create_connection(address, timeout=10) as holder,
        socket.create_connection(address, timeout=10) as asker,
    ):
        holder.sendall(request)
        time.sleep(0.2)
        asker.sendall(request)
        answer = _read_answer(asker)
    if not answer.startswith(b"HTTP/1.1 429"):
        raise StackError(f"expected a 429 from the gateway, got {answer[:200]!r}")
    return answer


class _Refuser(asyncio.Protocol):
    """Answers each complete request with ``answer``, on the connection it came on."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's, not asyncio's subclass

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.close()

    def on_message_complete(self) -> None:
        assert self.transport is not None
        self.transport.write(self.answer)


class FloorServer:
    """The bare refuser on a free loopback port, in its own thread, while the block runs."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port: int = probe.getsockname()[1]
        self._loop = uvloop.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="refusal-floor", daemon=True)
        self._tid = 0

    def __enter__(self) -> FloorServer:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the floor server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    @property
    def url(self) -> str:
        """Where it listens (any path is refused alike)."""
        return f"http://127.0.0.1:{self.port}"

    def cpu_seconds(self) -> float:
        """User plus system CPU seconds its thread has used."""
        return procstat.thread_cpu_seconds(self._tid)

    def _run(self) -> None:
        self._tid = threading.get_native_id()
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            self._loop.create_server(
                lambda: _Refuser(self.answer), "127.0.0.1", self.port, backlog=4096
            )
        )
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()
            self._loop.run_until_complete(server.wait_closed())
            self._loop.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: ``bazel run //load_testing/experiments:refusals``."""
    parser = argparse.ArgumentParser(
        prog="refusals", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="per phase")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=32, help="warm-up connections")
    parser.add_argument("--overload-connections", type=int, default=768)
    parser.add_argument("--refusal-rate", type=float, default=4000.0, help="offered a second")
    parser.add_argument("--out", type=Path, help="log directory")
    args = parser.parse_args(argv)
    base = Path(os.environ.get("BUILD_WORKSPACE_DIRECTORY") or Path.cwd())
    out: Path = args.out or base / "bench-results" / time.strftime("refusals-%Y%m%d-%H%M%S")
    try:
        run_refusals(args, out)
    except (StackError, wrk.WrkError) as e:
        print(f"refusals: {e}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
