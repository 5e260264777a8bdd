"""The gateway the streaming-protocol tests talk to: a real stack, or the real app on fakes.

With ``STREAM_STACK=1`` a registry, a gateway (HTTP and gRPC on free ports) and a model_c
worker run as processes on the target's brokers (``tests.integration.stack``). Otherwise the
real gateway app runs with the fakes of ``api/oip/tests/fakes.py`` (a text model that streams a
word a piece, the same words for the same seed), served over real HTTP by uvicorn in a thread:
the same HTTP clients, unchanged, talk to it either way. (No gRPC there: the gateway's
``inference.*`` messages and tritonclient's cannot share a process; ``api/grpc/tests`` covers
the service over fakes.)
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tools.stack.ports import free_port

if TYPE_CHECKING:
    from api.oip.tests.fakes import FakeDispatcher

START_TIMEOUT = 30.0


@dataclass(frozen=True)
class Target:
    """Where the gateway answers, and the text model's name there."""

    base_url: str
    grpc_target: str | None
    """``host:port`` of the gateway's gRPC service (None on fakes)."""
    model: str
    dispatcher: FakeDispatcher | None
    """The fakes' dispatcher (None on a real stack): what was streamed, what was stopped."""
    redis_url: str | None = None
    """The real stack's Redis (None on fakes): the tasks' event streams."""


@contextmanager
def streaming_target() -> Iterator[Target]:
    """A real stack with ``STREAM_STACK=1``, else the app on fakes, until the block ends."""
    if os.environ.get("STREAM_STACK") == "1":
        with _real_stack() as target:
            yield target
        return
    with _fakes() as target:
        yield target


@contextmanager
def _real_stack() -> Iterator[Target]:
    from tests.integration.stack import Stack

    grpc_port = free_port()
    with Stack(GRPC_PORT=str(grpc_port), MAX_TIMEOUT="60") as stack:
        model = stack.model_name("model_c")
        # A piece every 20 ms: a stream closed early is stopped before its end.
        stack.start_worker("models.model_c", model, CHUNK_DELAY_MS="20")
        yield Target(stack.api_url, f"127.0.0.1:{grpc_port}", model, None, stack.redis_url)


@contextmanager
def _fakes() -> Iterator[Target]:
    # Imported here: a process on a real stack runs tritonclient.grpc, whose messages share
    # names with the gateway's own (``inference.*``), which the gateway app imports.
    import uvicorn

    from api.config import Settings
    from api.oip.tests.fakes import FakeCatalog, FakeDispatcher, fake_gateway, text_model, words

    catalog = FakeCatalog(text_model("model_c"))
    dispatcher = FakeDispatcher(scripts={"model_c": words}, gap=0.01)
    settings = Settings(default_timeout=10.0, max_timeout=60.0)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            fake_gateway(catalog, dispatcher, settings=settings),
            host="127.0.0.1",
            port=port,
            lifespan="off",
            log_level="warning",
        )
    )
    http = threading.Thread(target=server.run, name="gateway", daemon=True)
    http.start()
    deadline = time.monotonic() + START_TIMEOUT
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the fake-backed gateway did not start")
        time.sleep(0.05)
    try:
        yield Target(f"http://127.0.0.1:{port}", None, "model_c", dispatcher)
    finally:
        server.should_exit = True
        http.join(10)
