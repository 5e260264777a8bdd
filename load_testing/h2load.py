"""Driving ``h2load`` (Debian's nghttp2-client) for gRPC calls, and reading what it measured.

h2load is a closed-loop HTTP/2 load generator in C, as wrk is for HTTP/1.1: each client holds
one connection with one stream at a time and POSTs the same body on every stream. For gRPC that
body is one framed message (``load_testing.tensor_payloads.grpc_frame``), sent with
``content-type: application/grpc`` and ``te: trailers`` to ``/<service>/<method>``.

h2load does not read trailers, where gRPC puts a call's status: a failed call is an HTTP 200 to
it. So a run proves only that answers came; the scenario checks one call through a real gRPC
client before a run and the gateway's own counts after it. When its time is up h2load stops with
each connection's call in flight: the server sees up to ``clients`` calls cancelled (the gateway
counts them as client errors), and the log leaves them out. h2load prints min, max and mean
latency only: the percentiles come from its ``--log-file`` (one line per request of the measured
period: start in microseconds since the epoch, HTTP status, 0 for none, and microseconds to the
end of the response).
"""

from __future__ import annotations

import math
import re
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

from load_testing.wrk import WrkResult, debian_tool

__all__ = ["GRPC_HEADERS", "H2loadError", "find_h2load", "parse", "percentile", "run"]

GRPC_HEADERS: Final = {"content-type": "application/grpc", "te": "trailers"}
"""The headers a gRPC request needs beyond HTTP/2's own."""

_REQUESTS = re.compile(
    r"requests: (?P<total>\d+) total, (?P<started>\d+) started, (?P<done>\d+) done, "
    r"(?P<succeeded>\d+) succeeded, (?P<failed>\d+) failed, (?P<errored>\d+) errored, "
    r"(?P<timeout>\d+) timeout"
)


class H2loadError(Exception):
    """h2load is missing, failed, or printed no result."""


def percentile(sorted_values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile (``share`` in [0, 1]) of ascending values; 0 for none."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(share * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def parse(output: str, log: str, seconds: float) -> WrkResult:
    """h2load's summary and its per-request log of a run measured for ``seconds``, in wrk's
    terms: answers by status and their latency; requests that got no status (cut off at the
    end of the run) are left out; connection errors are ``socket_errors``."""
    match = _REQUESTS.search(output)
    if match is None:
        raise H2loadError(f"h2load printed no result line:\n{output[-2000:]}")
    statuses: dict[int, int] = {}
    latencies_ms: list[float] = []
    for line in log.splitlines():
        fields = line.split("\t")
        if len(fields) < 3 or not fields[1].isdigit():
            continue
        status = int(fields[1])
        if status == 0:
            continue
        statuses[status] = statuses.get(status, 0) + 1
        latencies_ms.append(int(fields[2]) / 1000)
    latencies_ms.sort()
    return WrkResult(
        requests=len(latencies_ms),
        duration_s=seconds,
        p50_ms=percentile(latencies_ms, 0.50),
        p90_ms=percentile(latencies_ms, 0.90),
        p99_ms=percentile(latencies_ms, 0.99),
        max_ms=latencies_ms[-1] if latencies_ms else 0.0,
        socket_errors=int(match["errored"]),
        timeouts=int(match["timeout"]),
        statuses=statuses,
    )


def find_h2load() -> str:
    """The h2load executable, installed with ``apt-get install nghttp2-client`` when it is
    missing and apt-get can run; ``H2loadError`` saying how to get it otherwise."""
    path = debian_tool("h2load", "nghttp2-client")
    if path is None:
        raise H2loadError(
            "h2load is not installed: the gRPC legs need Debian's nghttp2-client "
            "(apt-get install nghttp2-client)"
        )
    return path


def run(
    url: str,
    body_file: Path,
    *,
    headers: Mapping[str, str],
    seconds: float,
    clients: int,
    warmup: float = 1.0,
) -> WrkResult:
    """Run h2load against ``url`` (``http://`` for h2c), ``clients`` connections of one stream
    each, POSTing the bytes of ``body_file`` with ``headers``, for ``seconds`` after
    ``warmup``."""
    h2load = find_h2load()
    duration = max(1, round(seconds))
    with tempfile.TemporaryDirectory(prefix="h2load-") as scratch:
        log = Path(scratch) / "requests.log"
        warm = [f"--warm-up-time={round(warmup * 1000)}ms"] if warmup > 0 else []
        command = [
            h2load, "-t1", f"-c{clients}", "-m1", f"-D{duration}", *warm, "-d", str(body_file),
            f"--log-file={log}",
            *(f"-H{name}: {value}" for name, value in headers.items()),
            url,
        ]  # fmt: skip
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=duration + warmup + 60
        )
        if done.returncode != 0:
            raise H2loadError(
                f"h2load failed ({done.returncode}): {(done.stderr or done.stdout).strip()[-2000:]}"
            )
        text = log.read_text() if log.exists() else ""
    return parse(done.stdout, text, duration)
