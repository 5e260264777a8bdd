"""Start Conveyor locally: ``python -m tools.up`` (``bazel run //:up``).

Checks that the gateway's (HTTP and gRPC) and the registry's ports are free (exits at once
naming a taken one),
uses the brokers at AMQP_URL / REDIS_URL or starts private ones, then the registry, the
gateway, model_a, model_b and model_c; each worker serves ``GET /metrics`` on a free port of its own
(``METRICS_PORT``; the banner prints them). A service that dies is restarted with a growing
back-off (and logged); the others keep serving, and the gateway answers 503 for a model with no
live worker meanwhile. SIGINT/SIGTERM stops everything it started.

With ``--traces`` (or ``CONVEYOR_UP_TRACES=1``) it starts traceview first, the OTLP receiver
and trace viewer (on ``--traces-port``, 4318; OTLP/gRPC on ``--traces-grpc-port``, 4317), and
gives every service ``OTEL_EXPORTER_OTLP_ENDPOINT`` pointing at it.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from tools.stack.brokers import DEFAULT_URLS, BrokerError, Brokers, ensure
from tools.stack.ports import free_port, port_in_use
from tools.stack.probes import http_ok, models_alive
from tools.stack.process import Service, stop_all
from tools.stack.services import (
    GRPC_PORT,
    PROCESSES,
    TRACEVIEW_GRPC_PORT,
    TRACEVIEW_PORT,
    WORKERS,
    Endpoints,
    by_name,
)
from tools.stack.supervisor import Backoff, Supervisor
from tools.stack.waiting import wait_until

READY_TIMEOUT = 90.0
MODELS = frozenset(s.name for s in WORKERS)


def _say(message: str) -> None:
    print(f"up: {message}", file=sys.stderr, flush=True)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="up", description=__doc__)
    parser.add_argument("--api-port", type=int, default=int(os.environ.get("API_PORT", "8000")))
    parser.add_argument(
        "--grpc-port",
        type=int,
        default=int(os.environ.get("GRPC_PORT", str(GRPC_PORT))),
        help="the gateway's gRPC port (the Open Inference Protocol); 0 turns it off",
    )
    parser.add_argument(
        "--registry-port", type=int, default=int(os.environ.get("REGISTRY_PORT", "8001"))
    )
    parser.add_argument(
        "--traces",
        action="store_true",
        default=os.environ.get("CONVEYOR_UP_TRACES", "") in ("1", "true", "yes"),
        help="also run traceview (OTLP receiver and trace viewer); the services send it spans",
    )
    parser.add_argument(
        "--traces-port",
        type=int,
        default=int(os.environ.get("TRACEVIEW_PORT", str(TRACEVIEW_PORT))),
        help="traceview's OTLP/HTTP port, also its viewer and API (with --traces)",
    )
    parser.add_argument(
        "--traces-grpc-port",
        type=int,
        default=int(os.environ.get("TRACEVIEW_GRPC_PORT", str(TRACEVIEW_GRPC_PORT))),
        help="traceview's OTLP/gRPC port; 0 turns it off (with --traces)",
    )
    parser.add_argument(
        "--restart-delay",
        type=float,
        default=float(os.environ.get("CONVEYOR_UP_RESTART_DELAY", "1")),
        help="seconds before the first restart of a dead service (doubles, up to 30 s)",
    )
    return parser.parse_args(argv)


def taken_ports(ports: dict[str, int]) -> list[str]:
    """Messages for the ports among ``ports`` (flag name -> port) that are in use."""
    return [
        f"port {port} is taken (needed by {flag}); stop what listens there or pass {flag}"
        for flag, port in ports.items()
        if port_in_use(port)
    ]


def worker_metrics_ports(taken: set[int]) -> dict[str, int]:
    """A distinct free ``METRICS_PORT`` for each worker, none of ``taken``.

    On one host the workers cannot all have the default (9200): the second would log that the
    port is taken and serve no metrics.
    """
    ports: dict[str, int] = {}
    for worker in WORKERS:
        port = free_port()
        while port in taken or port in ports.values():
            port = free_port()
        ports[worker.name] = port
    return ports


def _wait_ready(
    api_url: str,
    services: list[Service],
    stopping: Callable[[], bool],
    traces_url: str | None = None,
) -> None:
    def ready() -> bool:
        if stopping():
            raise AssertionError("stop requested")
        for service in services:
            if not service.alive():
                raise AssertionError(f"{service.label} exited with {service.returncode}")
        if traces_url and not http_ok(f"{traces_url}/healthz"):
            return False
        return http_ok(f"{api_url}/readyz") and models_alive(api_url, MODELS)

    wait_until(ready, READY_TIMEOUT, interval=0.5, what="gateway and models ready")


def _banner(brokers: Brokers, endpoints: Endpoints, services: list[Service], logs: Path) -> None:
    for broker in (brokers.rabbitmq, brokers.redis):
        origin = "started privately" if broker.started else "already running"
        _say(f"{broker.kind} at {broker.url} ({origin})")
    pids = ", ".join(f"{s.label} {s.pid}" for s in services)
    _say(f"registry at {endpoints.registry_url}, gateway at {endpoints.api_url}")
    if endpoints.grpc_port:
        _say(f"gRPC (Open Inference Protocol) at {endpoints.grpc_target}")
    if endpoints.traces_endpoint:
        grpc = f", OTLP/gRPC at 127.0.0.1:{endpoints.traceview_grpc_port}"
        _say(
            f"traces: viewer at {endpoints.traces_endpoint}/ (OTLP/HTTP there"
            f"{grpc if endpoints.traceview_grpc_port else ''})"
        )
    scrapes = [f"{endpoints.api_url}/metrics", f"{endpoints.registry_url}/metrics"]
    scrapes += [
        f"{name} http://127.0.0.1:{port}/metrics" for name, port in endpoints.metrics_ports.items()
    ]
    _say(f"metrics: {', '.join(scrapes)}")
    _say(f"pids: {pids}; logs in {logs}")
    _say("send a request:")
    print(
        f'  curl -X POST {endpoints.api_url}/predict/model_a -H "Content-Type: application/json" '
        '-d \'{"data": "example"}\'',
        file=sys.stderr,
    )
    _say("Ctrl-C stops everything")


def main(argv: list[str] | None = None) -> int:
    """Run until SIGINT/SIGTERM; return the exit code."""
    args = _parse(argv)
    ports = {"--api-port": args.api_port, "--registry-port": args.registry_port}
    if args.grpc_port:
        ports["--grpc-port"] = args.grpc_port
    if args.traces:
        ports["--traces-port"] = args.traces_port
        if args.traces_grpc_port:
            ports["--traces-grpc-port"] = args.traces_grpc_port
    problems = taken_ports(ports)
    if problems:
        for problem in problems:
            _say(problem)
        return 2
    stop_requested = False

    def request_stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    workdir = Path(tempfile.mkdtemp(prefix="conveyor-up-"))
    try:
        brokers = ensure(
            os.environ.get("AMQP_URL", DEFAULT_URLS["rabbitmq"]),
            os.environ.get("REDIS_URL", DEFAULT_URLS["redis"]),
            workdir,
        )
    except BrokerError as e:
        _say(str(e))
        return 1
    metrics_ports = worker_metrics_ports(
        {args.api_port, args.registry_port, args.grpc_port, args.traces_port}
    )
    endpoints = Endpoints.local(
        brokers.amqp_url,
        brokers.redis_url,
        args.api_port,
        args.registry_port,
        metrics_ports,
        grpc_port=args.grpc_port,
    )
    specs = list(PROCESSES)
    if args.traces:
        endpoints = dataclasses.replace(
            endpoints,
            traces_endpoint=f"http://127.0.0.1:{args.traces_port}",
            traceview_port=args.traces_port,
            traceview_grpc_port=args.traces_grpc_port,
        )
        specs.insert(0, by_name("traceview"))  # first: it receives the others' first spans
    services: list[Service] = []
    try:
        for spec in specs:
            # Readable log lines for development, unless LOG_FORMAT says otherwise.
            env = {
                **spec.environment(endpoints),
                "LOG_FORMAT": os.environ.get("LOG_FORMAT", "text"),
            }
            services.append(Service(spec.module, env, workdir, spec.name))
        try:
            _wait_ready(
                endpoints.api_url, services, lambda: stop_requested, endpoints.traces_endpoint
            )
        except (AssertionError, TimeoutError) as e:
            _say(f"services did not become ready ({e}); logs in {workdir}")
            return 1
        _banner(brokers, endpoints, services, workdir)
        supervisor = Supervisor(services, _say, Backoff(initial=args.restart_delay))
        while not stop_requested:
            supervisor.poll()
            time.sleep(0.2)
        return 0
    finally:
        # Workers first (they deregister), then the gateway, then the registry.
        stop_all([s for s in services if s.label in MODELS])
        stop_all([s for s in reversed(services) if s.label not in MODELS])
        brokers.stop()
        _say("stopped")


if __name__ == "__main__":
    sys.exit(main())
