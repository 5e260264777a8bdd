"""The runner's command line, its guards, and the v2 skip (against a real local HTTP server)."""

from __future__ import annotations

import argparse
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from load_testing import runner
from load_testing.scenarios import DEFAULT_SCENARIO, SCENARIOS


class _NotFound(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def not_found_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("30s", 30), ("2m", 120), ("1h30m", 5400), ("1m5s", 65)]
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert runner.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "5x", "-3s"])
def test_parse_duration_rejects_garbage(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        runner.parse_duration(text)


def _args(*argv: str) -> argparse.Namespace:
    return runner._parser().parse_args(list(argv))


def test_default_scenario_is_mixed_with_weighted_users() -> None:
    args = _args()
    assert args.scenario == DEFAULT_SCENARIO == "mixed"
    command = runner.build_command(SCENARIOS["mixed"], args, Path("/o"))
    assert command[-3:] == ["ModelAUser", "ModelBUser", "AsyncUser"]
    assert "step_shape.py" not in " ".join(command)
    assert command[command.index("--run-time") + 1] == "30s"


def test_think_time_reaches_locust_and_baseline_drives_healthz() -> None:
    default = runner.build_command(SCENARIOS["mixed"], _args(), Path("/o"))
    assert "--think-time=0.2" in default
    closed_loop = runner.build_command(
        SCENARIOS["baseline"], _args("baseline", "--think-time", "0"), Path("/o")
    )
    assert "--think-time=0.0" in closed_loop
    assert closed_loop[-1] == "HealthUser"


def test_step_scenario_loads_the_shape_and_bounds_its_run_time() -> None:
    args = _args("step", "--step-users", "3", "--step-time", "4s", "--step-count", "2")
    command = runner.build_command(SCENARIOS["step"], args, Path("/o"))
    files = command[command.index("-f") + 1].split(",")
    assert [Path(f).name for f in files] == ["locustfile.py", "step_shape.py"]
    assert {"--step-users=3", "--step-time=4", "--step-count=2"} <= set(command)
    assert command[command.index("--run-time") + 1] == f"{4 * 2 + 5}s"


def test_refuses_hosts_other_than_loopback(tmp_path: Path) -> None:
    assert runner.main(["--host", "http://example.com:8000", "--out", str(tmp_path)]) == 2
    assert not any(tmp_path.iterdir())


def test_v2_scenario_is_skipped_while_ready_endpoint_is_404(
    not_found_server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = runner.main(["v2_infer", "--host", not_found_server, "--out", str(tmp_path)])
    assert rc == 0
    assert "v2_infer skipped" in capsys.readouterr().out
    assert not any(tmp_path.iterdir())
