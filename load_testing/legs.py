"""A scenario's legs: the ways it sends requests to the systems it compares, each checked by one
call through a real client before the rounds, so that a leg answering wrong is skipped, not
measured.

A :class:`Leg` is one way: its target (``load_testing.targets``), the load that drives it and
its one-call check; :func:`verified` keeps the legs whose check passes. :func:`rest_file` and
:func:`grpc_file` make the load and the check of a leg that sends one request again and again,
from a file: a REST body driven by wrk, a framed gRPC ``ModelInfer`` driven by h2load.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import grpc
import httpx
from tritonclient.grpc import service_pb2

from load_testing import grpc_calls, h2load, wrk
from load_testing import tensor_payloads as tp
from load_testing.targets import Drive, Target
from load_testing.wrk import WrkResult

__all__ = ["Leg", "Verify", "grpc_file", "grpc_url", "rest_file", "verified"]

Verify = Callable[[], str | None]
"""A leg's one-call check: None when the call was answered right, else what was wrong."""


@dataclass(frozen=True)
class Leg:
    """One way of sending a payload: its processes, its load and its one-call check."""

    target: Target
    drive: Drive
    verify: Verify

    @property
    def name(self) -> str:
        """The row's name."""
        return self.target.name


LegT = TypeVar("LegT", bound=Leg)


def verified(legs: Sequence[LegT]) -> list[LegT]:
    """The legs whose one-call check passes, in order; each other one is skipped, saying why."""
    kept = []
    for leg in legs:
        problem = leg.verify()
        if problem is None:
            kept.append(leg)
        else:
            print(f"{leg.name}: one call answered wrong ({problem}); the leg is skipped")
    return kept


def _body_file(bodies: Path, name: str, suffix: str, content: bytes) -> Path:
    """``content`` written to a file of ``bodies`` named after the leg."""
    path = bodies / f"{name.replace(' ', '_')}{suffix}"
    path.write_bytes(content)
    return path


def rest_file(
    name: str,
    url: str,
    body: tp.HttpBody,
    bodies: Path,
    *,
    least: int,
    check: Callable[[httpx.Response], str | None],
) -> tuple[Drive, Verify]:
    """The load and the check of the REST leg ``name`` posting ``body`` to ``url``.

    The load: wrk posting the body from a file in ``bodies``; a 2xx answer not of the body's
    media type (the binary tensor data extension's, else JSON) or shorter than ``least`` bytes
    is unexpected. The check: one post through httpx, which must answer 200 and pass
    ``check``.
    """
    path = _body_file(bodies, name, ".body", body.body)
    expected = tp.OPAQUE if body.content_type == tp.OPAQUE else "json"

    def drive(seconds: float, connections: int) -> WrkResult:
        return wrk.run_file(
            url,
            path,
            content_type=body.content_type,
            expected_media=expected,
            least_bytes=least,
            headers=body.headers,
            seconds=seconds,
            connections=connections,
        )

    def verify() -> str | None:
        answer = httpx.post(
            url,
            content=body.body,
            timeout=30,
            headers={"Content-Type": body.content_type, **body.headers},
        )
        if answer.status_code != 200:
            return f"HTTP {answer.status_code}: {answer.text[:300]}"
        return check(answer)

    return drive, verify


def grpc_url(grpc_target: str) -> str:
    """The URL h2load posts ``ModelInfer`` to on ``grpc_target`` (``host:port``, h2c)."""
    return f"http://{grpc_target}{grpc_calls.METHOD}"


def grpc_file(
    name: str,
    grpc_target: str,
    request: service_pb2.ModelInferRequest,
    bodies: Path,
    *,
    check: Callable[[service_pb2.ModelInferResponse], str | None],
) -> tuple[Drive, Verify]:
    """The load and the check of the gRPC leg ``name`` sending ``request`` to ``grpc_target``.

    The load: h2load posting the framed request from a file in ``bodies`` to ``grpc_url``, one
    stream per connection (h2load reads no gRPC status: a failed call still answers HTTP 200).
    The check: one call through a real client, which must end OK and pass ``check``.
    """
    path = _body_file(bodies, name, ".grpc", tp.grpc_frame(request.SerializeToString()))
    url = grpc_url(grpc_target)

    def drive(seconds: float, connections: int) -> WrkResult:
        return h2load.run(
            url, path, headers=h2load.GRPC_HEADERS, seconds=seconds, clients=connections
        )

    def verify() -> str | None:
        try:
            return check(grpc_calls.infer(grpc_target, request))
        except grpc.RpcError as e:
            return f"gRPC error: {e}"

    return drive, verify
