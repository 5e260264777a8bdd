"""``stack_bench`` starts its own stack, runs the fixed scenario, prints one result line."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

LINE = re.compile(
    r"^stack_bench \S+ sync 2u/4s: ([\d.]+) req/s, p50 \d+ ms, p99 \d+ ms, errors 0/(\d+) \| "
    r"baseline /healthz ([\d.]+) req/s, p50 \d+ ms \| sync/baseline ([\d.]+)$",
    re.MULTILINE,
)


def test_stack_bench_prints_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable, "-m", "load_testing.stack_bench",
            "--users=2", "--run-time=4s", f"--out={tmp_path}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    match = LINE.search(done.stdout)
    assert match, done.stdout
    sync_rps, requests, baseline_rps, ratio = match.groups()
    assert int(requests) > 0
    assert float(sync_rps) > 0 and float(baseline_rps) > 0
    assert abs(float(ratio) - float(sync_rps) / float(baseline_rps)) < 0.01
    assert (tmp_path / "logs" / "api.log").exists()
    for scenario in ("baseline", "sync"):
        assert (tmp_path / scenario / "report.html").exists()
