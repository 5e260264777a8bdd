"""Benchmark every codec on every payload; print a table, write CSV, PNG charts and a summary.

Usage::

    python -m serialization_type_test.bench [--out DIR] [--quick] [--codecs a,b] [--payloads x,y]
    bazel run //serialization_type_test:bench -- [--quick]

Without ``--out`` the results go to ``bench-results/serialization-<timestamp>/`` under the
workspace when started by ``bazel run`` (``$BUILD_WORKSPACE_DIRECTORY``), else under the current
directory. The baseline codec (stdlib json) is always measured in the same run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from serialization_type_test import payloads
from serialization_type_test.codecs import BASELINE, CODECS, make_codec, protobuf_backend
from serialization_type_test.codecs.protobuf_codec import MESSAGES
from serialization_type_test.measure import Measurement, MeasureOptions, measure
from serialization_type_test.report import (
    format_table,
    make_rows,
    write_charts,
    write_csv,
    write_summary,
)

__all__ = ["default_out_dir", "main", "run"]

FULL = MeasureOptions(repeats=15, warmup=3, min_repeat_ns=20_000_000)
QUICK = MeasureOptions(repeats=5, warmup=1, min_repeat_ns=2_000_000)
_VERSIONED = ("protobuf", "orjson", "msgpack", "fastavro", "cbor2", "numpy")


def default_out_dir(now: dt.datetime | None = None) -> Path:
    """Timestamped directory under ``bench-results`` of the workspace (bazel run) or cwd."""
    base = Path(os.environ.get("BUILD_WORKSPACE_DIRECTORY") or Path.cwd())
    stamp = (now or dt.datetime.now()).strftime("%Y%m%d-%H%M%S")
    return base / "bench-results" / f"serialization-{stamp}"


def environment(options: MeasureOptions) -> dict[str, str]:
    """What the numbers depend on: interpreter, machine, library versions, protobuf backend."""
    env = {
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
        "protobuf backend": protobuf_backend(),
        "repeats x warm-up x min repeat": (
            f"{options.repeats} x {options.warmup} x {options.min_repeat_ns / 1e6:g} ms"
        ),
    }
    for dist in _VERSIONED:
        try:
            env[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            env[dist] = "unknown"
    return env


def run(
    codec_names: Sequence[str], selected: Sequence[payloads.Payload], options: MeasureOptions
) -> list[Measurement]:
    """Measure each codec on each payload, payload by payload, reporting progress on stderr."""
    results = []
    live = sys.stderr.isatty()
    for payload in selected:
        message = MESSAGES[payload.kind](**payload.value)
        for name in codec_names:
            value: Any = message if CODECS[name].input == "message" else payload.value
            if live:
                print(f"  {payload.name:<12} {name:<14}", end="\r", file=sys.stderr, flush=True)
            results.append(measure(make_codec(name, payload.kind), payload.name, value, options))
    if live:
        print(" " * 40, end="\r", file=sys.stderr, flush=True)
    return results


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="serialization_type_test.bench", description=__doc__)
    parser.add_argument("--out", type=Path, help="output directory (default: timestamped)")
    parser.add_argument("--quick", action="store_true", help="fewer, shorter repeats")
    parser.add_argument("--codecs", default=",".join(CODECS), help="comma-separated codecs")
    parser.add_argument(
        "--payloads",
        default="",
        help="comma-separated payload names (default: all)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns 1 when any round trip failed."""
    args = _parse(argv)
    names = [n for n in args.codecs.split(",") if n]
    unknown = [n for n in names if n not in CODECS]
    if unknown:
        print(f"unknown codecs: {', '.join(unknown)}; known: {', '.join(CODECS)}", file=sys.stderr)
        return 2
    codec_names = [BASELINE, *[n for n in names if n != BASELINE]]
    all_payloads = payloads.example_payloads()
    wanted = [p for p in args.payloads.split(",") if p]
    selected = [p for p in all_payloads if not wanted or p.name in wanted]
    if not selected:
        known = ", ".join(p.name for p in all_payloads)
        print(f"no payload selected; known: {known}", file=sys.stderr)
        return 2
    options = QUICK if args.quick else FULL
    out_dir: Path = args.out or default_out_dir()
    out_dir.mkdir(parents=True, exist_ok=True)

    env = environment(options)
    print(f"protobuf backend: {env['protobuf backend']}; measuring into {out_dir}", file=sys.stderr)
    rows = make_rows(run(codec_names, selected, options), BASELINE)
    print(format_table(rows))
    write_csv(rows, out_dir / "results.csv")
    write_charts(rows, out_dir)
    write_summary(rows, env, out_dir / "summary.md")
    print(f"\nwrote results.csv, sizes.png, times.png, summary.md to {out_dir}")
    return 0 if all(r.m.roundtrip_ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
