"""The gateway the v2 tests talk to: a running one, or the real app with fakes behind it.

To test a real stack set ``OIP_BASE_URL`` (e.g. ``http://127.0.0.1:8000``) and, when model_a
and model_b are served under other names, ``OIP_MODEL_A`` / ``OIP_MODEL_B``; under Bazel pass
them with ``--test_env``. Without ``OIP_BASE_URL`` the real gateway app runs in a thread with
the fake catalog and dispatcher of ``api/oip/tests/fakes.py``, served by uvicorn on a free port.
"""

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import uvicorn

from api.oip.tests.fakes import fake_gateway
from tools.stack.ports import free_port

START_TIMEOUT = 30.0


@dataclass(frozen=True)
class Target:
    """A gateway's base URL and the names of the two example models on it."""

    base_url: str
    model_a: str
    model_b: str

    @property
    def host_port(self) -> str:
        """``host:port``, the form tritonclient takes (no scheme)."""
        return urlsplit(self.base_url).netloc


@contextmanager
def gateway_target() -> Iterator[Target]:
    """The gateway named by ``OIP_BASE_URL``, else one of fakes running until the block ends."""
    url = os.environ.get("OIP_BASE_URL")
    if url:
        yield Target(
            url.rstrip("/"),
            os.environ.get("OIP_MODEL_A", "model_a"),
            os.environ.get("OIP_MODEL_B", "model_b"),
        )
        return
    port = free_port()
    config = uvicorn.Config(
        fake_gateway(), host="127.0.0.1", port=port, lifespan="off", log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="gateway", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the fake-backed gateway did not start")
        time.sleep(0.05)
    try:
        yield Target(f"http://127.0.0.1:{port}", "model_a", "model_b")
    finally:
        server.should_exit = True
        thread.join(10)
