"""Driving ``wrk`` (Debian's package) and reading what it measured.

``post.lua`` makes wrk print one ``BENCH_JSON {...}`` line at the end; :func:`parse` turns it
into a :class:`WrkResult`. For an open-ish loop, :func:`run` can add a per-connection pause
(wrk's ``delay()``), so many connections offer a set rate while some wait on slow answers.
:func:`run_file` posts a body of any size and bytes from a file (the same script, given
``@<file>``), checking each answer's media type and least size.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["WrkError", "WrkResult", "find_wrk", "parse", "run", "run_file"]

SCRIPT = Path(__file__).with_name("post.lua")
_MARK = "BENCH_JSON "


class WrkError(Exception):
    """wrk is missing, failed, or printed no result."""


@dataclass(frozen=True)
class WrkResult:
    """One wrk run: throughput, latency percentiles (ms), and answers by status."""

    requests: int
    duration_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    socket_errors: int = 0
    timeouts: int = 0
    non_json: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    unexpected: int = 0
    """2xx answers not of the expected media type or size (``run_file``)."""
    received_bytes: int = 0
    """Bytes read, headers included (``run_file``)."""

    @property
    def rps(self) -> float:
        """Answers per second (of any status)."""
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def ok(self) -> int:
        """Answers with a 2xx status."""
        return sum(n for status, n in self.statuses.items() if 200 <= status < 300)

    @property
    def errors(self) -> int:
        """Answers that were not 2xx, plus socket errors and wrk's own timeouts."""
        return self.requests - self.ok + self.socket_errors + self.timeouts

    def share(self, status: int) -> float:
        """The fraction of answers with ``status``."""
        total = sum(self.statuses.values())
        return self.statuses.get(status, 0) / total if total else 0.0


def parse(output: str) -> WrkResult:
    """Read the ``BENCH_JSON`` line of wrk's output; raise ``WrkError`` if there is none."""
    for line in reversed(output.splitlines()):
        if line.startswith(_MARK):
            data = json.loads(line[len(_MARK) :])
            break
    else:
        raise WrkError(f"wrk printed no result line:\n{output[-2000:]}")
    return WrkResult(
        requests=int(data["requests"]),
        duration_s=int(data["duration_us"]) / 1e6,
        p50_ms=int(data["p50_us"]) / 1000,
        p90_ms=int(data["p90_us"]) / 1000,
        p99_ms=int(data["p99_us"]) / 1000,
        max_ms=int(data["max_us"]) / 1000,
        socket_errors=int(data.get("socket_errors", 0)),
        timeouts=int(data.get("timeouts", 0)),
        non_json=int(data.get("non_json", 0)),
        statuses={int(k): int(v) for k, v in dict(data.get("statuses", {})).items()},
        unexpected=int(data.get("unexpected", 0)),
        received_bytes=int(data.get("bytes", 0)),
    )


def debian_tool(executable: str, package: str) -> str | None:
    """The path of ``executable``, installed from Debian's ``package`` first when it is missing
    and apt-get can run (as root); None when it is still missing."""
    path = shutil.which(executable)
    if path is None and shutil.which("apt-get") is not None and os.geteuid() == 0:
        print(f"{executable} is missing: installing Debian's {package}", flush=True)
        environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (["apt-get", "install", "-y", "-q", package],
                        ["apt-get", "update", "-q"],
                        ["apt-get", "install", "-y", "-q", package]):  # fmt: skip
            done = subprocess.run(command, env=environment, capture_output=True, check=False)
            if command[1] == "install" and done.returncode == 0:
                break
        path = shutil.which(executable)
    return path


def find_wrk() -> str:
    """The wrk executable, installed with ``apt-get install wrk`` when it is missing and
    apt-get can run; ``WrkError`` saying how to get it otherwise."""
    path = debian_tool("wrk", "wrk")
    if path is None:
        raise WrkError(
            "wrk is not installed: the benchmark needs Debian's wrk (apt-get install wrk)"
        )
    return path


def run(
    url: str,
    *,
    seconds: float,
    connections: int,
    threads: int = 1,
    body: str = "",
    delay_ms: float = 0.0,
    timeout_s: float = 10.0,
) -> WrkResult:
    """Run wrk against ``url`` (POSTing ``body``, default ``{"data": "example"}``)."""
    wrk = find_wrk()
    script = SCRIPT.read_text()
    if delay_ms > 0:
        script += (
            f"\nfunction delay()\n   return math.random(0, {max(1, round(2 * delay_ms))})\nend\n"
        )
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as file:
        file.write(script)
        file.flush()
        command = [
            wrk, f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s",
            f"--timeout={timeout_s:g}s", "-s", file.name, url, "--", body,
        ]  # fmt: skip
        return _run(command, seconds)


def run_file(
    url: str,
    body_file: Path,
    *,
    content_type: str,
    expected_media: str,
    least_bytes: int,
    headers: dict[str, str] | None = None,
    seconds: float,
    connections: int,
    threads: int = 1,
    timeout_s: float = 10.0,
) -> WrkResult:
    """Run wrk against ``url``, POSTing the bytes of ``body_file`` as ``content_type`` with
    ``headers``; a 2xx answer not of ``expected_media`` or shorter than ``least_bytes`` counts
    in ``unexpected``."""
    wrk = find_wrk()
    extra = [f"{name}: {value}" for name, value in (headers or {}).items()]
    command = [
        wrk, f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s",
        f"--timeout={timeout_s:g}s", "-s", str(SCRIPT), url, "--", f"@{body_file}",
        content_type, expected_media, str(least_bytes), *extra,
    ]  # fmt: skip
    return _run(command, seconds)


def _run(command: list[str], seconds: float) -> WrkResult:
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode != 0:
        raise WrkError(f"wrk failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return parse(done.stdout)
