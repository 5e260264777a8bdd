"""CpuBudget: processes confined to a CPU quota, and put back where they were afterwards."""

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from load_testing.cpu_budget import CGROUP_ROOT, CpuBudget, CpuBudgetError

SPIN = "while True: pass"


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cgroup(pid: int) -> str:
    return Path(f"/proc/{pid}/cgroup").read_text()


@pytest.fixture
def spinner() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen([sys.executable, "-c", SPIN])
    yield process
    process.kill()
    process.wait()


def _writable() -> bool:
    try:
        probe = CpuBudget(1.0, [], CGROUP_ROOT)
        with probe:
            return True
    except (CpuBudgetError, OSError):
        return False


@pytest.mark.skipif(not _writable(), reason="no writable cgroup cpu controller (needs root)")
def test_a_busy_process_gets_its_quota_and_is_put_back(
    spinner: subprocess.Popen[bytes],
) -> None:
    before = _cgroup(spinner.pid)
    with CpuBudget(0.2, [spinner.pid]) as budget:
        assert budget.group.name in _cgroup(spinner.pid)
        start_cpu, start = _cpu_seconds(spinner.pid), time.monotonic()
        time.sleep(1.5)
        cores = (_cpu_seconds(spinner.pid) - start_cpu) / (time.monotonic() - start)
        assert cores < 0.35, f"confined to 0.2 cores, used {cores:.2f}"
        assert budget.throttled_seconds() > 0
    assert _cgroup(spinner.pid) == before
    assert not budget.group.exists()


def test_no_cpu_controller_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CpuBudgetError, match="no cgroup cpu controller"):
        CpuBudget(1.0, [], tmp_path)


def test_cores_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="positive"):
        CpuBudget(0, [], tmp_path)
