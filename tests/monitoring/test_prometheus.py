"""The Prometheus image scrapes Conveyor: its binary and configuration, against a real stack.

Runs ``/usr/bin/prometheus`` taken out of ``//images:prometheus`` (a static-ish Go binary that
needs only libc) on this host, with the image's ``prometheus.yml`` turned to the stack's
loopback ports (same jobs), and asks its HTTP API that every target is up and that the
gateway's, the registry's and the worker's ``conveyor_`` series arrive.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml  # type: ignore[import-untyped]

from tests.integration.stack import Stack, free_port, wait_until
from tests.monitoring.image_files import extract

PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"
CONFIG = "/etc/prometheus/prometheus.yml"
JOBS = ("conveyor-gateway", "conveyor-registry", "conveyor-workers")


def _image_tarball() -> Path:
    path = os.environ.get("CONVEYOR_PROMETHEUS_IMAGE", "")
    assert path, "CONVEYOR_PROMETHEUS_IMAGE names the image tarball (set by the Bazel target)"
    return Path(path)


@pytest.fixture(scope="module")
def image() -> dict[str, Path]:
    """The image's prometheus, promtool and configuration, extracted to a temporary directory."""
    into = Path(tempfile.mkdtemp(prefix="conveyor-prometheus-image-"))
    return extract(_image_tarball(), (PROMETHEUS, PROMTOOL, CONFIG), into)


def test_the_image_config_is_valid_and_names_every_service(image: dict[str, Path]) -> None:
    check = subprocess.run(
        [str(image[PROMTOOL]), "check", "config", str(image[CONFIG])],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    config = yaml.safe_load(image[CONFIG].read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert tuple(jobs) == JOBS
    assert jobs["conveyor-gateway"]["static_configs"][0]["targets"] == ["api:8000"]
    assert jobs["conveyor-registry"]["static_configs"][0]["targets"] == ["registry:8001"]
    workers = jobs["conveyor-workers"]["dns_sd_configs"][0]
    assert workers["port"] == 9200
    assert set(workers["names"]) == {"model_a", "model_b", "model_c"}


def local_config(image_config: Path, targets: dict[str, str]) -> dict[str, Any]:
    """The image's configuration with each job's targets replaced by ``targets[job]``."""
    config: dict[str, Any] = yaml.safe_load(image_config.read_text())
    config["global"]["scrape_interval"] = "1s"
    for job in config["scrape_configs"]:
        job.pop("dns_sd_configs", None)
        job["static_configs"] = [{"targets": [targets[job["job_name"]]]}]
    return config


class Prometheus:
    """The image's prometheus binary running on a free loopback port."""

    def __init__(self, binary: Path, config: dict[str, Any]) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="conveyor-prometheus-"))
        config_file = self.dir / "prometheus.yml"
        config_file.write_text(json.dumps(config))  # JSON is YAML
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = self.dir / "prometheus.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [
                    str(binary),
                    f"--config.file={config_file}",
                    f"--storage.tsdb.path={self.dir / 'data'}",
                    f"--web.listen-address={self.url.removeprefix('http://')}",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The result vector of an instant query (empty until Prometheus answers)."""
        if self.process.poll() is not None:
            raise AssertionError(f"prometheus exited:\n{self.log.read_text(errors='replace')}")
        try:
            response = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=5)
        except httpx.TransportError:
            return []
        if response.status_code == 503:  # listening, but its storage not ready yet (plain text)
            return []
        body = response.json()
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def close(self) -> None:
        """Stops the process."""
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


class Served(Stack):
    """A stack with one model_a worker whose metrics port is known."""

    model: str
    worker_metrics_port: int


@pytest.fixture(scope="module")
def stack() -> Iterator[Served]:
    stack = Served()
    try:
        stack.model = stack.model_name("model_a")
        stack.worker_metrics_port = free_port()
        stack.start_worker(
            "models.model_a", stack.model, METRICS_PORT=str(stack.worker_metrics_port)
        )
        response = stack.http.post(f"/predict/{stack.model}", json={"data": "example"})
        assert response.status_code == 200, response.text
        yield stack
    finally:
        stack.close()


@pytest.fixture(scope="module")
def prometheus(image: dict[str, Path], stack: Served) -> Iterator[Prometheus]:
    targets = {
        "conveyor-gateway": f"127.0.0.1:{stack.api_port}",
        "conveyor-registry": f"127.0.0.1:{stack.registry_port}",
        "conveyor-workers": f"127.0.0.1:{stack.worker_metrics_port}",
    }
    server = Prometheus(image[PROMETHEUS], local_config(image[CONFIG], targets))
    try:
        yield server
    finally:
        server.close()


def _values(result: list[dict[str, Any]], label: str) -> dict[str, float]:
    return {series["metric"].get(label, ""): float(series["value"][1]) for series in result}


def test_every_target_is_up(prometheus: Prometheus) -> None:
    def all_up() -> dict[str, float] | None:
        up = _values(prometheus.query("up"), "job")
        return up if len(up) == len(JOBS) and all(v == 1 for v in up.values()) else None

    up = wait_until(all_up, 60, interval=0.5, what="every target up")
    assert up == {job: 1.0 for job in JOBS}


def test_conveyor_series_arrive_from_each_service(prometheus: Prometheus, stack: Served) -> None:
    selector = f'{{model="{stack.model}"}}'

    def scraped(expr: str) -> list[dict[str, Any]] | None:
        return prometheus.query(expr) or None

    requests = wait_until(
        lambda: scraped(f"conveyor_requests_total{selector}"), 60, what="gateway's requests"
    )
    assert _values(requests, "job") == {"conveyor-gateway": 1.0}
    assert requests[0]["metric"]["outcome"] == "ok"
    tasks = wait_until(lambda: scraped(f"conveyor_tasks_total{selector}"), 60, what="tasks")
    assert _values(tasks, "job") == {"conveyor-workers": 1.0}
    live = wait_until(
        lambda: scraped(f"conveyor_live_instances{selector}"), 60, what="live instances"
    )
    assert _values(live, "job") == {"conveyor-registry": 1.0}
