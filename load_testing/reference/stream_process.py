"""Starting and stopping the streaming baseline (``stream_gateway``) for the benchmark."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from load_testing.stack import StackError, free_port

__all__ = ["StreamBaseline"]


@dataclass
class StreamBaseline:
    """The baseline's one process; ``CHUNK_DELAY_MS`` comes from this process's environment."""

    log_dir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The streaming URL."""
        return f"http://127.0.0.1:{self.port}/generate"

    @property
    def pid(self) -> int:
        """The server's process id."""
        assert self.process is not None
        return self.process.pid

    def _answers(self) -> bool:
        request = urllib.request.Request(
            self.url,
            data=b'{"prompt": "a", "max_tokens": 1}',
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def start(self, timeout: float = 60.0) -> StreamBaseline:
        """Start the process and wait until it streams."""
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
            "REF_PORT": str(self.port),
        }
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with (self.log_dir / "stream_baseline.log").open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "load_testing.reference.stream_gateway"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self.process.poll() is not None:
                raise StackError(f"the streaming baseline exited; see {self.log_dir}")
            if time.monotonic() > deadline:
                self.stop()
                raise StackError(f"the streaming baseline did not answer; see {self.log_dir}")
            time.sleep(0.25)
        return self

    def stop(self) -> None:
        """SIGTERM, then kill if it lingers."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> StreamBaseline:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
