"""Serving an ASGI application over ``conveyor.http_protocol``: sockets, lifespan, shutdown,
and several processes on one port.

- ``HttpServer.serve(sock, stop)`` runs one process's server on a listening socket: the app's
  lifespan startup (a failed startup raises ``StartupFailed``), then connections until ``stop``
  is set; then no new connection is accepted, idle connections close at once, busy ones after
  their response, for at most ``shutdown_grace`` seconds; then the lifespan shutdown.
- ``run(...)`` is a service's entry point: it binds ``host:port`` and serves until SIGTERM or
  SIGINT on uvloop. With ``processes`` above one, each of that many children of a supervisor
  (``conveyor.process.supervise``) binds the port with ``SO_REUSEPORT`` and serves on its own,
  the kernel spreading connections across them; a child that dies is started again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
import socket
from collections.abc import Callable
from typing import Any

import uvloop

from conveyor.http_protocol import ErrorAnswer, Gate, HttpProtocol, json_error_answer
from conveyor.process import supervise

__all__ = ["HttpServer", "StartupFailed", "bind", "run"]

logger = logging.getLogger(__name__)

BACKLOG = 2048
"""Connections the kernel queues for ``accept``."""


class StartupFailed(RuntimeError):
    """The application's lifespan startup failed; the server does not serve."""


class _Lifespan:
    """The ASGI lifespan protocol, driven from the server's side."""

    def __init__(self, app: Callable[..., Any], state: dict[str, Any]) -> None:
        self.app = app
        self.state = state
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.answers: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None
        self.supported = True

    async def _call(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"},
                 "state": self.state}  # fmt: skip
        try:
            await self.app(scope, self.inbox.get, self.answers.put)
        except Exception as e:  # an app without lifespan support raises on the scope
            self.supported = False
            await self.answers.put({"type": "lifespan.unsupported", "message": str(e)})

    async def _exchange(self, event: str) -> None:
        await self.inbox.put({"type": f"lifespan.{event}"})
        answer = await self.answers.get()
        if answer["type"] == f"lifespan.{event}.failed":
            raise StartupFailed(answer.get("message") or f"lifespan {event} failed")
        if answer["type"] == "lifespan.unsupported":
            logger.warning("the application refused the lifespan scope: %s", answer["message"])

    async def startup(self) -> None:
        """Send ``lifespan.startup``; raise ``StartupFailed`` if the app says it failed."""
        self.task = asyncio.create_task(self._call())
        await self._exchange("startup")

    async def shutdown(self) -> None:
        """Send ``lifespan.shutdown`` and wait for the app's answer."""
        if self.task is None:
            return
        if self.supported and not self.task.done():
            try:
                await self._exchange("shutdown")
            except StartupFailed as e:
                logger.error("%s", e)
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(self.task, 5.0)


class HttpServer:
    """One process's HTTP server for ``app`` (see the module doc); ``gate``, ``error_answer``
    and ``keep_alive`` are passed to every connection's ``protocol``."""

    def __init__(
        self,
        app: Callable[..., Any],
        *,
        gate: Gate | None = None,
        error_answer: ErrorAnswer = json_error_answer,
        keep_alive: float = 5.0,
        shutdown_grace: float = 30.0,
        protocol: type[HttpProtocol] = HttpProtocol,
    ) -> None:
        self.app = app
        self.protocol = protocol
        self.gate = gate
        self.error_answer = error_answer
        self.keep_alive = keep_alive
        self.shutdown_grace = shutdown_grace
        self.connections: set[HttpProtocol] = set()
        self.started = asyncio.Event()

    def _protocol(self, state: dict[str, Any]) -> HttpProtocol:
        return self.protocol(
            self.app,
            state=state,
            gate=self.gate,
            error_answer=self.error_answer,
            keep_alive=self.keep_alive,
            connections=self.connections,
        )

    async def serve(self, sock: socket.socket, stop: asyncio.Event) -> None:
        """Serve on the listening ``sock`` until ``stop`` is set (see the module doc)."""
        state: dict[str, Any] = {}
        lifespan = _Lifespan(self.app, state)
        await lifespan.startup()
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: self._protocol(state), sock=sock, backlog=BACKLOG)
        self.started.set()
        try:
            await stop.wait()
        finally:
            server.close()
            for connection in list(self.connections):
                connection.shutdown()
            deadline = loop.time() + self.shutdown_grace
            # Connections leave the set from their own callbacks: polled, at shutdown only.
            while self.connections and loop.time() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            for connection in list(self.connections):
                connection.transport.abort()
            await lifespan.shutdown()


def bind(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A listening TCP socket on ``host:port`` (IPv6 if ``host`` is one); ``reuse_port`` lets
    several processes bind the same port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(BACKLOG)
    sock.setblocking(False)
    return sock


def run(
    make_server: Callable[[int], HttpServer],
    *,
    host: str,
    port: int,
    processes: int = 1,
    name: str = "http",
) -> int:
    """Serve on ``host:port`` until SIGTERM or SIGINT; the process's exit status.

    ``make_server(place)`` builds the server (and its app) in the process that serves: with
    ``processes`` above one, in each child, after the fork; ``place`` is the process's place,
    1 to ``processes`` (kept by a process started again in a dead one's place).
    """
    if processes <= 1:
        sock = bind(host, port)
        return _serve_process(functools.partial(make_server, 1), sock, host, port)
    # The parent holds the port (so port 0 becomes one port for all) without listening on it.
    holder = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    holder.bind((host, port))
    bound = holder.getsockname()[1]

    def child(number: int) -> None:
        holder.close()
        sock = bind(host, bound, reuse_port=True)
        raise SystemExit(_serve_process(functools.partial(make_server, number), sock, host, bound))

    logger.info("%s: %d processes on http://%s:%d", name, processes, host, bound)
    try:
        return supervise(processes, child, name=name, grace=35.0)
    finally:
        holder.close()


def _serve_process(
    make_server: Callable[[], HttpServer], sock: socket.socket, host: str, port: int
) -> int:
    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        server = make_server()
        try:
            serving = asyncio.create_task(server.serve(sock, stop))
            started = asyncio.create_task(server.started.wait())
            await asyncio.wait({serving, started}, return_when=asyncio.FIRST_COMPLETED)
            if started.done():
                logger.info("serving on http://%s:%d", host, port)
            else:
                started.cancel()
            await serving
        except StartupFailed as e:
            logger.error("startup failed: %s", e)
            return 3
        return 0

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main())
