"""``API_WORKERS=2``: two gateway processes listen on one port (and on the gRPC port) under a
supervisor that starts a dead one again; a scrape of either answers the series of both;
SIGTERM stops them all."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from tests.integration.stack import Stack, free_port, wait_until


def _listening_inodes(port: int) -> set[str]:
    """The inodes of the TCP sockets listening on ``port`` (IPv4 and IPv6)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                inodes.add(inode)
    return inodes


def _group(pgid: int) -> list[int]:
    """The processes of process group ``pgid``."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[2]) == pgid and stat[0] != "Z":
                members.append(int(entry.name))
    return members


def _listeners(pgid: int, port: int) -> list[int]:
    """The processes of group ``pgid`` that listen on ``port``."""
    inodes = _listening_inodes(port)
    found = []
    for pid in _group(pgid):
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                found.append(pid)
                break
    return sorted(found)


def _scrape(api_url: str, model: str) -> tuple[float, frozenset[str]]:
    """On a new connection (either process): the predicts of ``model`` answered ok, and the
    ``process`` labels of the runtime's series."""
    with httpx.Client(base_url=api_url, timeout=30) as client:
        answer = client.get("/metrics", headers={"Accept": "application/openmetrics-text"})
    assert answer.status_code == 200, answer.text
    ok = 0.0
    processes = set()
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            labels = sample.labels
            if (
                sample.name == "conveyor_requests_total"
                and labels.get("model") == model
                and labels.get("endpoint") == "predict"
                and labels.get("outcome") == "ok"
            ):
                ok += sample.value
            if sample.name == "process_resident_memory_bytes":
                processes.add(labels["process"])
    return ok, frozenset(processes)


def _scrapes_agree(api_url: str, model: str, count: int = 12) -> float:
    """Scrape ``count`` times, each on a new connection; every scrape must show both processes
    and the same predict count (whichever process answered). Returns that count."""
    seen = {_scrape(api_url, model) for _ in range(count)}
    assert len(seen) == 1, seen
    ((ok, processes),) = seen
    assert processes == {"1", "2"}
    return ok


def test_two_gateway_processes_share_the_port_and_a_dead_one_is_replaced() -> None:
    grpc_port = free_port()
    with Stack(API_WORKERS="2", GRPC_PORT=str(grpc_port)) as stack:
        model = stack.model_name("a")
        stack.start_worker("models.model_a", model)
        group, port = stack.gateway.pid, stack.api_port
        wait_until(lambda: len(_listeners(group, port)) == 2, 60, what="two gateway processes")
        first = _listeners(group, port)
        wait_until(lambda: _listeners(group, grpc_port) == first, 60, what="both on gRPC too")

        def health_all(count: int) -> None:
            for _ in range(count):  # a new connection each
                with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
                    answer = health_pb2_grpc.HealthStub(channel).Check(
                        health_pb2.HealthCheckRequest(), timeout=30
                    )
                assert answer.status == health_pb2.HealthCheckResponse.SERVING

        def predict_all(count: int) -> None:
            for n in range(count):  # a new connection each: the kernel spreads them
                with httpx.Client(base_url=stack.api_url, timeout=30) as client:
                    answer = client.post(f"/predict/{model}", json={"data": f"x{n}"})
                assert answer.status_code == 200, answer.text
                assert answer.json() == {"reply": f"Processed message: x{n}"}

        predict_all(20)
        health_all(10)
        assert _scrapes_agree(stack.api_url, model) == 20
        os.kill(first[0], signal.SIGKILL)

        def replaced() -> bool:
            now = _listeners(group, port)
            return len(now) == 2 and first[0] not in now and first[1] in now

        wait_until(replaced, 60, what="the killed gateway process replaced")
        wait_until(lambda: len(_listeners(group, grpc_port)) == 2, 60, what="its gRPC port")
        survivors = _scrape(stack.api_url, model)[0]  # the survivor's share of the first 20
        predict_all(20)
        health_all(10)
        assert _scrapes_agree(stack.api_url, model) == survivors + 20
        stack.gateway.signal(signal.SIGTERM)
        assert stack.gateway.process.wait(60) == 0, stack.gateway.log()
        assert _listeners(group, port) == []
        assert _listeners(group, grpc_port) == []
