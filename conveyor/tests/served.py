"""A real Conveyor HTTP server (``conveyor.http_server``) in a thread of the test process, on a
free loopback port."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvloop

from conveyor.http_server import HttpServer, bind

__all__ = ["serve_in_thread"]


@contextlib.contextmanager
def serve_in_thread(app: Any, **options: Any) -> Iterator[int]:
    """Serve ``app`` (``HttpServer`` options in ``options``) until the block ends; yields the
    port."""
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = HttpServer(app, **options)
    ready: dict[str, Any] = {}

    async def main() -> None:
        stop = asyncio.Event()
        ready["loop"], ready["stop"] = asyncio.get_running_loop(), stop
        await server.serve(sock, stop)

    def target() -> None:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(main())

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started.is_set():
        assert thread.is_alive(), "the server's thread ended before it served"
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    try:
        yield port
    finally:
        ready["loop"].call_soon_threadsafe(ready["stop"].set)
        thread.join(timeout=10)
        sock.close()
