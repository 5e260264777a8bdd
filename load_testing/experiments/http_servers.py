"""Question: which HTTP server should the gateway run on, once it may use only public APIs?

Answer: Conveyor's own protocol on httptools' public parser API (``conveyor.http_protocol``).
On the sync predict path the three candidates cost about the same gateway CPU a request (own and
stock uvicorn within a few per cent, granian more), so the path does not decide; what decides is
what only the own protocol does through supported means: bytes that are not HTTP get the JSON
error object (stock uvicorn and granian answer plain text or nothing), a refusal past
``MAX_INFLIGHT`` is prerendered bytes before any ASGI work, and the gateway's admission is a
typed seam, not a subclass. The figures are in docs/decisions.md.

How: the same gateway app (``api.main.create_app``) behind each server, in turn, on one host
CPython with the lock's wheels, against one registry and one model_a worker; ``wrk -t1 -c32``
posting model_a's example, alternating servers each round; the gateway's CPU a request from
``/proc`` (its process and children). Not a Bazel target: granian is not in the lock. Run::

    python3 -m venv /tmp/hv && /tmp/hv/bin/pip install --no-deps -r requirements.lock granian
    ./bazelw build //api:server //registry:server //models/model_a:server
    REGISTRY_PORT=18001 bazel-bin/registry/server &
    REGISTRY_URL=http://127.0.0.1:18001 METRICS_PORT=0 bazel-bin/models/model_a/server &
    /tmp/hv/bin/python load_testing/experiments/http_servers.py --rounds 3 --seconds 10
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNFILES = Path("bazel-bin/api/server.runfiles/conveyor").resolve()
WRK_SCRIPT = 'wrk.method = "POST"\nwrk.body = \'{"data": "example"}\'\n' + (
    'wrk.headers["Content-Type"] = "application/json"\n'
)
UVICORN = """import os, uvicorn
from api.main import create_app
uvicorn.run(create_app(), host="127.0.0.1", port=int(os.environ["API_PORT"]), loop="uvloop",
            http="httptools", access_log=False, log_level="warning", server_header=False)
"""
GRANIAN_APP = "from api.main import create_app\napp = create_app()\n"


def _cpu_seconds(pid: int) -> float:
    """User and system CPU of ``pid`` and its children."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    total = 0
    for member in [pid, *map(int, children)]:
        fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _malformed_answer(port: int) -> str:
    """What the server answers to bytes that are not HTTP: its Content-Type, or 'nothing'."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(b"BREW /predict/model_a HTTP/1.1\r\nHost: t\r\n\r\n")
        data = b""
        try:
            while chunk := conn.recv(65536):
                data += chunk
        except OSError:
            pass
    match = re.search(rb"(?im)^content-type: *([^\r\n;]+)", data)
    status = data.split(b"\r\n", 1)[0].decode(errors="replace") or "nothing"
    return f"{status} ({match.group(1).decode() if match else 'no content-type'})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--registry-url", default="http://127.0.0.1:18001")
    parser.add_argument("--max-inflight", type=int, default=512, help="1: measure refusals")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="http-servers-"))
    (work / "uv.py").write_text(UVICORN)
    (work / "gw.py").write_text(GRANIAN_APP)
    (work / "post.lua").write_text(WRK_SCRIPT)
    python = sys.executable
    granian = str(Path(python).with_name("granian"))
    servers = {
        "own": ([python, "-m", "api"], 18100),
        "uvicorn": ([python, str(work / "uv.py")], 18101),
        "granian": (
            [granian, "--interface", "asgi", "--loop", "uvloop", "--host", "127.0.0.1", "--port",
             "18102", "--no-ws", "--log-level", "warning", "--workers", "1", "gw:app"],
            18102,
        ),
    }  # fmt: skip
    env = dict(
        os.environ,
        PYTHONPATH=f"{work}:{RUNFILES}",
        REGISTRY_URL=args.registry_url,
        LOG_LEVEL="warning",
        MAX_INFLIGHT=str(args.max_inflight),
    )
    procs = {
        name: subprocess.Popen(command, env={**env, "API_PORT": str(port)})
        for name, (command, port) in servers.items()
    }
    try:
        time.sleep(8)
        for name, (_, port) in servers.items():
            print(f"{name:8s} answers bytes that are not HTTP with: {_malformed_answer(port)}")
        for round_ in range(args.rounds):
            for name, (_, port) in servers.items():
                before = _cpu_seconds(procs[name].pid)
                out = subprocess.run(
                    ["wrk", "-t1", f"-c{args.connections}", f"-d{args.seconds}s", "--latency",
                     "-s", str(work / "post.lua"), f"http://127.0.0.1:{port}/predict/model_a"],
                    capture_output=True, text=True, check=True,
                ).stdout  # fmt: skip
                cpu = _cpu_seconds(procs[name].pid) - before
                rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
                count = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
                p50 = re.search(r"(?m)^\s+50%\s+(\S+)", out).group(1)  # type: ignore[union-attr]
                p99 = re.search(r"(?m)^\s+99%\s+(\S+)", out).group(1)  # type: ignore[union-attr]
                other = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
                print(
                    f"round {round_} {name:8s} {rate:8.0f} req/s  p50 {p50:>8s}  p99 {p99:>8s}  "
                    f"gateway CPU {1e6 * cpu / max(count, 1):5.0f} us/answer  "
                    f"non-2xx {other.group(1) if other else 0}",
                    flush=True,
                )
    finally:
        for proc in procs.values():
            proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            proc.wait(30)


if __name__ == "__main__":
    main()
