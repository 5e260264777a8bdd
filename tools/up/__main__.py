"""Start Conveyor locally: ``python -m tools.up`` (``bazel run //:up``).

Uses the brokers at AMQP_URL / REDIS_URL, or starts private ones; then the registry, the
gateway, model_a and model_b. Prints where to send requests; SIGINT/SIGTERM stops everything
it started.
"""

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

import httpx

from tools.up import brokers

SERVICES = ("registry", "api", "models.model_a", "models.model_b")
READY_TIMEOUT = 90.0


def _spawn(module: str, env: dict[str, str], logs: Path) -> subprocess.Popen[bytes]:
    log = (logs / f"{module}.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", module], env=env, stdout=log, stderr=subprocess.STDOUT
    )


def _wait_ready(url: str, children: dict[str, subprocess.Popen[bytes]]) -> bool:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        for name, child in children.items():
            if child.poll() is not None:
                print(f"up: {name} exited with {child.returncode}", file=sys.stderr)
                return False
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    return False


def _models_alive(api_url: str) -> bool:
    try:
        listed = httpx.get(f"{api_url}/models", timeout=2.0).json()
    except (httpx.HTTPError, ValueError):
        return False
    alive = {m["name"] for m in listed if m.get("status") == "alive"}
    return {"model_a", "model_b"} <= alive


def _terminate(children: dict[str, subprocess.Popen[bytes]]) -> None:
    for child in reversed(list(children.values())):
        if child.poll() is None:
            child.terminate()
    for child in children.values():
        try:
            child.wait(30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def main() -> int:
    """Run until SIGINT/SIGTERM; return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--api-port", default=os.environ.get("API_PORT", "8000"))
    parser.add_argument("--registry-port", default=os.environ.get("REGISTRY_PORT", "8001"))
    args = parser.parse_args()
    stop_requested = False

    def request_stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    workdir = Path(tempfile.mkdtemp(prefix="conveyor-up-"))
    amqp_url = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        started = brokers.ensure(amqp_url, redis_url, workdir)
    except brokers.BrokerError as e:
        print(f"up: {e}", file=sys.stderr)
        return 1
    urls = {b.kind: b.url for b in started}
    registry_url = f"http://127.0.0.1:{args.registry_port}"
    api_url = f"http://127.0.0.1:{args.api_port}"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(sys.path),
        "PYTHONUNBUFFERED": "1",
        "LOG_FORMAT": os.environ.get("LOG_FORMAT", "text"),  # readable lines for development
        "AMQP_URL": urls["rabbitmq"],
        "REDIS_URL": urls["redis"],
        "REGISTRY_URL": registry_url,
        "REGISTRY_PORT": str(args.registry_port),
        "API_PORT": str(args.api_port),
    }
    children: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for module in SERVICES:
            children[module] = _spawn(module, env, workdir)
        ready = _wait_ready(f"{api_url}/readyz", children)
        while ready and not stop_requested and not _models_alive(api_url):
            time.sleep(0.5)
        if not ready:
            print(f"up: services did not become ready; logs in {workdir}", file=sys.stderr)
            return 1
        for broker in started:
            origin = "started privately" if broker.process else "already running"
            print(f"up: {broker.kind} at {broker.url} ({origin})")
        print(f"up: registry at {registry_url}, gateway at {api_url} (docs: {api_url}/docs)")
        print(f"up: logs in {workdir}")
        print("up: send a request:")
        print(
            f'  curl -X POST {api_url}/predict/model_a -H "Content-Type: application/json" '
            '-d \'{"data": "example"}\''
        )
        print("up: Ctrl-C stops everything", flush=True)
        while not stop_requested:
            for name, child in children.items():
                if child.poll() is not None:
                    print(f"up: {name} exited with {child.returncode}; stopping", file=sys.stderr)
                    return 1
            time.sleep(0.5)
        return 0
    finally:
        _terminate(children)
        brokers.stop(started)
        print("up: stopped", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
