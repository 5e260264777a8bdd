"""Starting and stopping the streaming baseline (``stream_gateway``) for the benchmark."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from load_testing.reference.spawn import Running, spawn, stop_all, wait_answering
from load_testing.stack import free_port

__all__ = ["StreamBaseline"]

PROBE = b'{"prompt": "a", "max_tokens": 1}'


@dataclass
class StreamBaseline(Running):
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

    def start(self, timeout: float = 60.0) -> Self:
        """Start the process and wait until it streams."""
        self.process = spawn(
            "load_testing.reference.stream_gateway",
            self.log_dir / "stream_baseline.log",
            {"REF_PORT": str(self.port)},
        )
        try:
            wait_answering(
                self.url, PROBE, {"the streaming baseline": self.process}, timeout, self.log_dir
            )
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """SIGTERM, then kill if it lingers."""
        if self.process is not None:
            stop_all([self.process])
