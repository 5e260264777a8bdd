"""Run one scenario with Locust headless in a subprocess, watch it, and judge the result.

Usage::

    python -m load_testing [scenario] --host http://127.0.0.1:8000 [--users N --spawn-rate R
        --run-time T] [--out DIR] [--max-failure-ratio 0.01]
    bazel run //load_testing:locust -- [scenario] --host http://127.0.0.1:8000

No scenario means ``mixed``. Output (default: ``bench-results/load-<scenario>-<timestamp>/``
under the workspace when run by ``bazel run``, else under the current directory): Locust's
``locust_*.csv``, ``report.html``, ``locust.log``, and ``history.png``. Exit status: 0 passed
(or skipped), 1 failure ratio above the threshold or no request made, 2 usage error, 3 Locust
itself failed or overran its time bound.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Final, TextIO
from urllib.parse import urlsplit

from load_testing import history
from load_testing.scenarios import DEFAULT_SCENARIO, SCENARIOS, V2_READY_PATH, Scenario

__all__ = ["build_command", "main", "parse_duration", "run"]

PACKAGE_DIR: Final = Path(__file__).absolute().parent
CSV_PREFIX: Final = "locust"
LOOPBACK: Final = frozenset({"127.0.0.1", "localhost", "::1"})
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_LOCUST = 0, 1, 2, 3
_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s?)?$")


def parse_duration(text: str) -> int:
    """Seconds in a Locust duration such as ``90``, ``30s``, ``2m`` or ``1h30m``."""
    match = _DURATION.match(text.strip())
    if not text.strip() or match is None:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 30s, 2m, 1h30m)")
    hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="load_testing", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "scenario",
        nargs="?",
        default=DEFAULT_SCENARIO,
        choices=list(SCENARIOS),
        help="; ".join(f"{s.name}: {s.description}" for s in SCENARIOS.values()),
    )
    parser.add_argument("--host", default="http://127.0.0.1:8000", help="gateway base URL")
    parser.add_argument("--users", type=int, default=10, help="concurrent users")
    parser.add_argument("--spawn-rate", type=float, default=5.0, help="users started per second")
    parser.add_argument("--run-time", type=parse_duration, default="30s", help="e.g. 30s, 2m")
    parser.add_argument("--out", type=Path, help="output directory (default: timestamped)")
    parser.add_argument(
        "--max-failure-ratio", type=float, default=0.01, help="fail above this (default 1%%)"
    )
    parser.add_argument("--model-a", default="model_a", help="name of the text model")
    parser.add_argument("--model-b", default="model_b", help="name of the features model")
    parser.add_argument(
        "--registry-url",
        default="http://127.0.0.1:8001",
        help="registry asked for model examples when the gateway does not serve them",
    )
    parser.add_argument("--step-users", type=int, default=5, help="step: users added per step")
    parser.add_argument("--step-time", type=parse_duration, default="15s", help="step: duration")
    parser.add_argument("--step-count", type=int, default=8, help="step: number of steps")
    parser.add_argument(
        "--think-time",
        type=float,
        default=0.2,
        help="longest pause of a user between requests, seconds (0: closed loop, for capacity)",
    )
    parser.add_argument("--quiet", action="store_true", help="no live progress line")
    return parser


def default_out_dir(scenario: str, now: dt.datetime | None = None) -> Path:
    """Timestamped directory under ``bench-results`` of the workspace (bazel run) or cwd."""
    base = Path(os.environ.get("BUILD_WORKSPACE_DIRECTORY") or Path.cwd())
    stamp = (now or dt.datetime.now()).strftime("%Y%m%d-%H%M%S")
    return base / "bench-results" / f"load-{scenario}-{stamp}"


def build_command(scenario: Scenario, args: argparse.Namespace, out_dir: Path) -> list[str]:
    """The Locust command line for ``scenario`` (run with ``out_dir`` as working directory)."""
    files = [str(PACKAGE_DIR / "locustfile.py")]
    run_time = args.run_time
    extra: list[str] = []
    if scenario.step_shape:
        files.append(str(PACKAGE_DIR / "step_shape.py"))
        run_time = args.step_time * args.step_count + 5
        extra = [
            f"--step-users={args.step_users}",
            f"--step-time={args.step_time}",
            f"--step-count={args.step_count}",
        ]
    return [
        sys.executable, "-m", "locust",
        "-f", ",".join(files),
        "--headless",
        "--host", args.host,
        "--users", str(args.users),
        "--spawn-rate", str(args.spawn_rate),
        "--run-time", f"{run_time}s",
        "--stop-timeout", "10",
        "--csv", str(out_dir / CSV_PREFIX),
        "--csv-full-history",
        "--html", str(out_dir / "report.html"),
        "--logfile", str(out_dir / "locust.log"),
        "--only-summary",
        "--exit-code-on-error", "0",
        f"--model-a={args.model_a}",
        f"--model-b={args.model_b}",
        f"--registry-url={args.registry_url}",
        f"--think-time={args.think_time}",
        *extra,
        *scenario.user_classes,
    ]  # fmt: skip


def _time_bound(scenario: Scenario, args: argparse.Namespace) -> float:
    run_time = args.step_time * args.step_count if scenario.step_shape else args.run_time
    return float(run_time) + 90.0


def _v2_missing(host: str) -> bool:
    try:
        with urllib.request.urlopen(host.rstrip("/") + V2_READY_PATH, timeout=10):
            return False
    except urllib.error.HTTPError as e:
        return e.code == 404
    except OSError:
        return False


def _progress(path: Path, started: float, bound: float) -> str:
    points = history.read_history(path) if path.exists() else []
    elapsed = time.monotonic() - started
    if not points:
        return f"[{elapsed:5.0f}s] starting…"
    p = points[-1]
    return (
        f"[{elapsed:5.0f}s/{bound - 90:.0f}s] users {p.users:4d}  {p.rps:8.1f} req/s  "
        f"p50 {p.p50_ms:6.0f} ms  p95 {p.p95_ms:6.0f} ms  "
        f"requests {p.total_requests}  failures {p.total_failures}"
    )


def _watch(
    process: subprocess.Popen[bytes], out_dir: Path, bound: float, tty: TextIO | None
) -> bool:
    """Show progress on ``tty`` (None: quiet) until Locust exits; False if it overran ``bound``."""
    started = time.monotonic()
    history_csv = out_dir / f"{CSV_PREFIX}_stats_history.csv"
    live = tty is not None and tty.isatty()
    last_line = 0.0
    while process.poll() is None:
        if time.monotonic() - started > bound:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            return False
        now = time.monotonic()
        if live:
            print("\r" + _progress(history_csv, started, bound), end="", file=tty, flush=True)
        elif tty is not None and now - last_line >= 5:
            print(_progress(history_csv, started, bound), file=tty, flush=True)
            last_line = now
        time.sleep(1)
    if live:
        print(file=tty)
    return True


def run(args: argparse.Namespace) -> int:
    """Run the scenario in ``args``; see the module docstring for the exit status."""
    scenario = SCENARIOS[args.scenario]
    for url in (args.host, args.registry_url):
        if (urlsplit(url).hostname or "") not in LOOPBACK:
            print(f"refusing to load-test {url}: only loopback hosts", file=sys.stderr)
            return EXIT_USAGE
    if scenario.needs_v2 and _v2_missing(args.host):
        print(
            f"scenario {scenario.name} skipped: {args.host}{V2_READY_PATH} answered 404 "
            "(the v2 infer endpoint does not exist yet)"
        )
        return EXIT_OK
    out_dir: Path = args.out or default_out_dir(scenario.name)
    out_dir.mkdir(parents=True, exist_ok=True)
    command = build_command(scenario, args, out_dir)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    print(f"scenario {scenario.name} against {args.host} -> {out_dir}", flush=True)
    with (out_dir / "locust.out").open("wb") as output:
        process = subprocess.Popen(
            command, cwd=out_dir, env=env, stdout=output, stderr=subprocess.STDOUT
        )
        finished = _watch(
            process, out_dir, _time_bound(scenario, args), None if args.quiet else sys.stdout
        )
    return _judge(scenario, args, out_dir, process.returncode if finished else None)


def _judge(scenario: Scenario, args: argparse.Namespace, out_dir: Path, rc: int | None) -> int:
    stats_csv = out_dir / f"{CSV_PREFIX}_stats.csv"
    if rc is None or rc != 0 or not stats_csv.exists():
        reason = "overran its time bound" if rc is None else f"exited with {rc}"
        print(f"locust {reason}; see {out_dir / 'locust.out'}", file=sys.stderr)
        return EXIT_LOCUST
    points = history.read_history(out_dir / f"{CSV_PREFIX}_stats_history.csv")
    if points:
        history.plot_history(points, out_dir / "history.png", f"{scenario.name} @ {args.host}")
    totals = history.read_totals(stats_csv)
    print(
        f"{scenario.name}: {totals.requests} requests, {totals.failures} failures "
        f"({totals.failure_ratio:.2%}), {totals.rps:.1f} req/s, p50 {totals.p50_ms:.0f} ms, "
        f"p95 {totals.p95_ms:.0f} ms, p99 {totals.p99_ms:.0f} ms"
    )
    if scenario.step_shape:
        _report_saturation(points)
    if totals.requests == 0:
        print("FAILED: no request was made", file=sys.stderr)
        return EXIT_FAILED
    if totals.failure_ratio > args.max_failure_ratio:
        print(
            f"FAILED: failure ratio {totals.failure_ratio:.2%} > {args.max_failure_ratio:.2%}; "
            f"see {out_dir / (CSV_PREFIX + '_failures.csv')}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_OK


def _report_saturation(points: Sequence[history.Point]) -> None:
    steps = history.plateaus(points)
    for s in steps:
        print(f"  step {s.users:4d} users: {s.rps:8.1f} req/s, p95 {s.p95_ms:.0f} ms")
    knee = history.find_saturation(steps)
    if knee is not None:
        print(f"saturation: ~{knee.rps:.1f} req/s at {knee.users} users (more users add little)")
    elif steps:
        best = max(steps, key=lambda s: s.rps)
        print(f"no saturation up to {steps[-1].users} users (best {best.rps:.1f} req/s)")


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point of ``python -m load_testing``."""
    return run(_parser().parse_args(argv))
