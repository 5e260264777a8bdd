"""Process and process-group readings from ``/proc``, on this test's own processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from load_testing import procstat

SLEEPER = [sys.executable, "-c", "import time; time.sleep(30)"]
PARENT = [
    sys.executable,
    "-c",
    f"import subprocess, time; print(subprocess.Popen({SLEEPER!r}).pid, flush=True); "
    "time.sleep(30)",
]


def test_a_group_is_its_leader_and_the_children_it_started() -> None:
    other = subprocess.Popen(SLEEPER, start_new_session=True)
    leader = subprocess.Popen(PARENT, start_new_session=True, stdout=subprocess.PIPE, text=True)
    try:
        assert leader.stdout is not None
        child = int(leader.stdout.readline())
        deadline = time.monotonic() + 20
        while child not in procstat.group_pids(leader.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        members = procstat.group_pids(leader.pid)
        assert leader.pid in members
        assert child in members
        assert other.pid not in members
    finally:
        for process in (leader, other):
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        if leader.stdout is not None:
            leader.stdout.close()


def test_group_readings_add_up_their_processes() -> None:
    group = os.getpgrp()
    assert os.getpid() in procstat.group_pids(group)
    assert procstat.group_rss_mb(group) >= procstat.rss_mb(os.getpid()) > 0
    assert procstat.group_cpu_seconds(group) >= procstat.cpu_seconds(os.getpid()) > 0


def test_a_group_with_no_process_reads_as_nothing() -> None:
    gone = subprocess.Popen(["true"], start_new_session=True)
    gone.wait()
    assert procstat.group_pids(gone.pid) == []
    assert procstat.group_cpu_seconds(gone.pid) == 0.0
