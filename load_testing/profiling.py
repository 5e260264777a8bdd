"""The ``profile`` scenario: cProfile of the gateway and of model_a's worker under wrk load.

A stack starts as usual; then its gateway and its model_a worker are restarted under
``python -m cProfile`` with the same environment (and port), driven by ``wrk -c32`` for
``--seconds``, stopped with SIGTERM (so the profiles are written), and the functions with the
most own time and the most cumulative time of each are printed. The ``.prof`` files stay in
the log directory (``python -m pstats`` or snakeviz read them).
"""

from __future__ import annotations

import argparse
import io
import pstats
import signal
import sys
from pathlib import Path

from load_testing import wrk
from load_testing.bench import brokers
from load_testing.stack import Stack
from tools.stack.process import Service

__all__ = ["run_profile"]

TOP = 25


def _restart_profiled(stack: Stack, name: str, module: str, out: Path) -> Service:
    service = stack.services[name]
    service.stop()
    command = [sys.executable, "-m", "cProfile", "-o", str(out / f"{name}.prof"), "-m", module]
    profiled = Service(module, service.env, out, f"{name}.profiled", argv=command)
    stack.services[name] = profiled
    return profiled


def _print_top(path: Path, label: str) -> None:
    for order in ("tottime", "cumulative"):
        text = io.StringIO()
        stats = pstats.Stats(str(path), stream=text)
        stats.sort_stats(order).print_stats(TOP)
        print(f"\n=== {label}: top {TOP} by {order} ===")
        print(text.getvalue().split("\n\n", 2)[-1])


def run_profile(args: argparse.Namespace, out: Path) -> None:
    """The profile scenario (see the module doc)."""
    amqp_url, redis_url = brokers()
    log_dir = out / "logs"
    with Stack(log_dir, amqp_url=amqp_url, redis_url=redis_url) as stack:
        api = _restart_profiled(stack, "api", "api", log_dir)
        worker = _restart_profiled(stack, "model_a", "models.model_a", log_dir)
        url = f"{stack.api_url}/predict/{stack.model_a}"
        stack._wait("profiled gateway and worker", "models")
        wrk.run(url, seconds=args.warmup, connections=args.connections)
        result = wrk.run(url, seconds=args.seconds, connections=args.connections)
        print(f"profiled run: {result.rps:,.0f} req/s, p99 {result.p99_ms:.1f} ms")
        for process in (worker, api):
            # SIGINT: uvicorn re-raises the signal it stopped on, and only an interrupt (not a
            # SIGTERM) still lets cProfile write its file.
            process.signal(signal.SIGINT)
            process.process.wait(timeout=60)
    _print_top(log_dir / "api.prof", f"gateway ({result.requests} requests)")
    _print_top(log_dir / "model_a.prof", f"model_a worker ({result.requests} tasks)")
