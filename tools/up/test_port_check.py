"""A second //:up on a busy machine exits at once, naming the taken port."""

import socket
import subprocess
import sys

from tools.stack.ports import free_port


def test_exits_at_once_naming_a_taken_port() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "tools.up", "--api-port", str(taken),
             "--registry-port", str(free_port())],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert f"port {taken} is taken (needed by --api-port)" in result.stderr
    assert "registry" not in result.stderr.split("taken")[0], "nothing was started first"
