"""A real OTLP trace receiver for tests: ``traceview`` (``python -m traceview``) as a process.

    with TraceReceiver() as receiver:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint}   # give it to the services
        ...
        spans = receiver.wait_for_trace(trace_id, min_spans=6, timeout=20)["spans"]

Every test package can use the session-scoped ``trace_receiver`` fixture: load this module as a
pytest plugin (``args = ["-p", "tools.stack.traces"]`` in its ``py_pytest_test``) or import the
fixture into the test module (``from tools.stack.traces import trace_receiver``). The target
needs ``//tools/stack:traces`` among its deps (it brings ``//traceview``).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx
import pytest

from tools.stack.ports import free_port
from tools.stack.probes import http_ok
from tools.stack.process import Service
from tools.stack.waiting import wait_until

__all__ = ["START_TIMEOUT", "TraceReceiver", "trace_receiver"]

START_TIMEOUT = 30.0
REQUEST_TIMEOUT = 10.0


class TraceReceiver:
    """traceview on a free loopback port, started at once and answering when made.

    ``endpoint`` is the base URL an OTLP/HTTP exporter takes (``OTEL_EXPORTER_OTLP_ENDPOINT``;
    the exporter adds ``/v1/traces``); ``grpc_endpoint`` is ``host:port`` of OTLP/gRPC when
    ``grpc`` is True, else None. ``stop()`` ends the process (also on leaving ``with``).
    """

    def __init__(
        self,
        log_dir: Path | None = None,
        *,
        max_spans: int = 200_000,
        grpc: bool = False,
        timeout: float = START_TIMEOUT,
    ) -> None:
        self.port = free_port()
        self.grpc_port = free_port() if grpc else 0
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.grpc_endpoint = f"127.0.0.1:{self.grpc_port}" if grpc else None
        base = os.environ.get("TEST_TMPDIR")
        log_dir = log_dir or Path(tempfile.mkdtemp(prefix="traceview-", dir=base))
        self.service = Service(
            "traceview",
            {
                "TRACEVIEW_HOST": "127.0.0.1",
                "TRACEVIEW_PORT": str(self.port),
                "TRACEVIEW_GRPC_PORT": str(self.grpc_port),
                "TRACEVIEW_MAX_SPANS": str(max_spans),
            },
            log_dir,
            "traceview",
        )
        self.client = httpx.Client(base_url=self.endpoint, timeout=REQUEST_TIMEOUT)
        try:
            wait_until(self._ready, timeout, what=f"traceview on {self.endpoint}")
        except BaseException:
            self.stop()
            raise

    def _ready(self) -> bool:
        if not self.service.alive():
            raise AssertionError(f"traceview exited:\n{self.service.log()}")
        return http_ok(f"{self.endpoint}/healthz")

    def _get(self, path: str, **params: Any) -> Any:
        response = self.client.get(path, params={k: v for k, v in params.items() if v is not None})
        response.raise_for_status()
        return response.json()

    def services(self) -> list[str]:
        """Every service that sent a span still held."""
        services: list[str] = self._get("/api/services")["services"]
        return services

    def traces(
        self, service: str | None = None, *, limit: int = 1000, min_duration_ms: float = 0.0
    ) -> list[dict[str, Any]]:
        """Trace summaries (``GET /api/traces``), newest first, of ``service`` or of all."""
        found: list[dict[str, Any]] = self._get(
            "/api/traces", service=service, limit=limit, min_duration_ms=min_duration_ms
        )["traces"]
        return found

    def trace(self, trace_id: str) -> dict[str, Any] | None:
        """``{"trace_id", "spans": [...]}`` of that trace, spans by start; None if unknown."""
        response = self.client.get(f"/api/traces/{trace_id}")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        found: dict[str, Any] = response.json()
        return found

    def wait_for_trace(
        self, trace_id: str, *, min_spans: int = 1, timeout: float = 20.0
    ) -> dict[str, Any]:
        """The trace once it holds at least ``min_spans`` spans (exporters batch: spans come
        late); ``TimeoutError`` naming the spans seen so far otherwise."""
        seen: list[str] = []

        def enough() -> dict[str, Any] | None:
            found = self.trace(trace_id)
            if found is None:
                return None
            seen[:] = [f"{s['service']}:{s['name']}" for s in found["spans"]]
            return found if len(found["spans"]) >= min_spans else None

        try:
            result: dict[str, Any] = wait_until(
                enough, timeout, interval=0.1, what=f"trace {trace_id} with {min_spans} spans"
            )
        except TimeoutError as e:
            raise TimeoutError(f"{e}; spans so far: {seen or 'none'}") from e
        return result

    def clear(self) -> None:
        """Forget every trace held."""
        self.client.delete("/api/traces").raise_for_status()

    def log(self) -> str:
        """traceview's output so far (for failure messages)."""
        return self.service.log()

    def stop(self) -> None:
        """Stop traceview (SIGTERM, then SIGKILL if it lingers)."""
        self.client.close()
        self.service.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


@pytest.fixture(scope="session")
def trace_receiver() -> Iterator[TraceReceiver]:
    """One traceview for the test session (a Bazel test target); tests that count traces
    call ``clear()`` first or filter by their own trace ids."""
    with TraceReceiver() as receiver:
        yield receiver
