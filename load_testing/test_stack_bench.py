"""``stack_bench`` starts its own stack, runs the fixed scenario, prints one result line."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

LINE = re.compile(
    r"^stack_bench \S+ sync 2u/4s: [\d.]+ req/s, p50 \d+ ms, p99 \d+ ms, errors 0/(\d+)$",
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
    assert int(match.group(1)) > 0
    assert (tmp_path / "logs" / "api.log").exists()
