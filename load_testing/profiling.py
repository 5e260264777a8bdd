"""The ``profile`` scenario: where the gateway's and a model worker's time goes under load.

A stack starts as usual; then its gateway and the worker of ``--model`` (model_a, the echo, by
default; model_b runs with its dynamic batching) are restarted under a profiler with the same
environment (and port) and driven by wrk for ``--seconds``:

- ``--load closed`` (default): ``wrk -c32``, the main run's load;
- ``--load overload``: the ``overload`` scenario's open loop at ``--factor`` x the capacity
  measured first as that scenario measures it (before the restart), with ``?timeout=5``
  (model_a only).

Profilers (``--profiler``):

- ``cprofile`` (default): ``python -m cProfile``, stopped with SIGINT so the ``.prof`` files are
  written; the functions with the most own and cumulative time are printed. Its counts for
  coroutines mislead: a coroutine's time is split over each resumption.
- ``py-spy``: each process sampled 200 times a second without pausing it, attached after the
  warm-up for exactly the measured ``--seconds`` (``py-spy record --nonblocking -f raw``);
  frames are ranked by own and inclusive samples. py-spy cannot read Bazel's interpreter (the
  unpacked dynamic loader running python3), so the two processes run on a host CPython of the
  same minor version (``python3.X`` on ``PATH``) with the runfiles' import path; the wheels
  load there. Both py-spy and that interpreter must be installed (``pip install py-spy``).

The profiles stay in the log directory (``python -m pstats`` or snakeviz read the ``.prof``
files; the ``.folded`` ones are flame-graph input).
"""

from __future__ import annotations

import argparse
import io
import os
import pstats
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from load_testing import wrk
from load_testing.overload import DEEP_CONNECTIONS, measure_capacity, offer_overload
from load_testing.stack import Stack
from load_testing.targets import brokers, conveyor_targets
from tools.stack.process import Service, python_path

__all__ = ["ProfilerMissing", "Ranked", "host_python", "rank_folded", "run_profile"]

TOP = 25

Ranked = list[tuple[str, float]]
"""Frames with their share of all samples, largest first."""


def rank_folded(lines: Iterable[str], top: int) -> tuple[Ranked, Ranked]:
    """The ``top`` frames by *own* samples (the frame was running) and by *inclusive* samples
    (the frame was on the stack, counted once per stack however often it recurs), each as a
    share of all samples. Lines that are not ``stack count`` are skipped."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        frames = stack.split(";")
        total += samples
        own[frames[-1]] += samples
        for frame in set(frames):
            inclusive[frame] += samples
    if total == 0:
        return [], []
    return (
        [(frame, n / total) for frame, n in own.most_common(top)],
        [(frame, n / total) for frame, n in inclusive.most_common(top)],
    )


class ProfilerMissing(RuntimeError):
    """py-spy or a host interpreter for it is not installed."""


def host_python() -> str:
    """A CPython on ``PATH`` of this interpreter's minor version that is not Bazel's."""
    name = f"python{sys.version_info.major}.{sys.version_info.minor}"
    found = shutil.which(name)
    if found is None:
        raise ProfilerMissing(f"py-spy needs a host {name} on PATH")
    return found


def _host_env(env: dict[str, str]) -> dict[str, str]:
    """``env`` for the host interpreter: the runfiles' import roots without Bazel's stdlib."""
    own = os.path.realpath(sys.base_prefix)
    roots = [p for p in python_path().split(os.pathsep) if not os.path.realpath(p).startswith(own)]
    host = {k: v for k, v in env.items() if k != "PYTHONHOME"}
    host["PYTHONPATH"] = os.pathsep.join(roots)
    return host


def _restart_profiled(stack: Stack, name: str, module: str, out: Path, profiler: str) -> Service:
    """Restart service ``name``: under cProfile, or on the host interpreter for py-spy."""
    service = stack.services[name]
    service.stop()
    if profiler == "py-spy":
        command = [host_python(), "-m", module]
        profiled = Service(
            module, _host_env(service.env), out, f"{name}.profiled", argv=command, exact_env=True
        )
    else:
        command = [sys.executable, "-m", "cProfile", "-o", str(out / f"{name}.prof"), "-m", module]
        profiled = Service(module, service.env, out, f"{name}.profiled", argv=command)
    stack.services[name] = profiled
    return profiled


def _spy(pid: int, seconds: float, path: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling process ``pid`` for ``seconds`` without pausing it, into ``path``."""
    spy = shutil.which("py-spy")
    if spy is None:
        raise ProfilerMissing("py-spy is not installed (pip install py-spy)")
    command = [
        spy, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))),
        "--nonblocking", "--rate", "200", "--format", "raw", "--output", str(path),
    ]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _print_top(path: Path, label: str) -> None:
    if path.suffix == ".folded":
        ranked = rank_folded(path.read_text().splitlines(), TOP)
        for order, rows in zip(("own samples", "inclusive samples"), ranked, strict=True):
            print(f"\n=== {label}: top {TOP} by {order} ===")
            for frame, share in rows:
                print(f"{share:6.1%}  {frame}")
        return
    for order in ("tottime", "cumulative"):
        text = io.StringIO()
        stats = pstats.Stats(str(path), stream=text)
        stats.sort_stats(order).print_stats(TOP)
        print(f"\n=== {label}: top {TOP} by {order} ===")
        print(text.getvalue().split("\n\n", 2)[-1])


def _load(args: argparse.Namespace, url: str, body: str, capacity: float) -> wrk.WrkResult:
    """The profiled load: closed loop, or the overload scenario's open loop."""
    if args.load == "closed":
        return wrk.run(url, seconds=args.seconds, connections=args.connections, body=body)
    return offer_overload(url, args, capacity, args.seconds)[0]


def run_profile(args: argparse.Namespace, out: Path) -> None:
    """The profile scenario (see the module doc)."""
    amqp_url, redis_url = brokers()
    log_dir = out / "logs"
    spying = args.profiler == "py-spy"
    suffix = ".folded" if spying else ".prof"
    model = args.model
    if model != "model_a" and args.load == "overload":
        raise SystemExit("bench: --load overload profiles model_a only")
    with Stack(log_dir, amqp_url=amqp_url, redis_url=redis_url) as stack:
        target = dict(zip(("model_a", "model_b"), conveyor_targets(stack), strict=True))[model]
        url, body = target.url, target.body
        capacity = 0.0
        if args.load == "overload":  # measured unprofiled, as the overload scenario does
            wrk.run(url, seconds=args.warmup, connections=args.connections)
            capacity = measure_capacity(target, args)[0]
            print(f"capacity (closed loop, c={args.connections} and {DEEP_CONNECTIONS}): "
                  f"{capacity:,.0f} req/s; overload at {args.factor:g}x")  # fmt: skip
        api = _restart_profiled(stack, "api", "api", log_dir, args.profiler)
        worker = _restart_profiled(stack, model, f"models.{model}", log_dir, args.profiler)
        stack._wait("profiled gateway and worker", "models")
        wrk.run(url, seconds=args.warmup, connections=args.connections, body=body)
        targets = (("api", api), (model, worker)) if spying else ()
        spies = [_spy(p.pid, args.seconds, log_dir / f"{n}.folded") for n, p in targets]
        result = _load(args, url, body, capacity)
        for spy in spies:
            _, errors = spy.communicate(timeout=60)
            if spy.returncode != 0:
                print(f"py-spy failed: {errors.decode(errors='replace')[-500:]}")
        statuses = ", ".join(f"{s}: {n:,}" for s, n in sorted(result.statuses.items()))
        print(f"profiled run: {result.rps:,.0f} req/s ({statuses}), p99 {result.p99_ms:.1f} ms")
        for process in (worker, api):
            # SIGINT: uvicorn re-raises the signal it stopped on, and only an interrupt (not a
            # SIGTERM) still lets cProfile write its file.
            process.signal(signal.SIGINT)
            try:
                process.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.stop()
    _print_top(log_dir / f"api{suffix}", f"gateway ({result.requests} requests)")
    _print_top(log_dir / f"{model}{suffix}", f"{model} worker ({result.requests} tasks)")
