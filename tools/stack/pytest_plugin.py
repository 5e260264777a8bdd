"""pytest plugin: each test session (one Bazel test target) gets its own RabbitMQ and Redis.

Loaded with ``-p tools.stack.pytest_plugin`` (``py_pytest_test(brokers = True)`` adds it). At
session start, before collection, it starts a broker pair and exports ``AMQP_URL`` and
``REDIS_URL`` into ``os.environ``; at session end it removes what it started. The mode:

- ``CONVEYOR_TEST_BROKERS=container|local|external`` forces one;
- else ``external`` when ``AMQP_URL`` or ``REDIS_URL`` is set explicitly;
- else ``container`` when a container engine answers (the images come from
  ``CONVEYOR_BROKER_TARBALLS``, Bazel's build of ``//images:rabbitmq`` and ``//images:redis``);
- else ``local`` when ``rabbitmq-server`` and ``redis-server`` are installed.

With none of them available the session stops with a message naming what to install.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from tools.oci.engine import Engine, detect_engine
from tools.stack.brokers import MODES, BrokerError, Brokers, local_binaries, start_pair
from tools.stack.containers import load_broker_images

__all__ = ["MODE_ENV", "TARBALLS_ENV", "choose_mode"]

MODE_ENV = "CONVEYOR_TEST_BROKERS"
TARBALLS_ENV = "CONVEYOR_BROKER_TARBALLS"
NOTHING_AVAILABLE = (
    "no brokers for the integration tests: no container engine answers and rabbitmq-server / "
    "redis-server are not installed. Install podman (tools/podman/setup; ./bazelw runs it), or "
    "apt-get install rabbitmq-server redis-server, or set AMQP_URL and REDIS_URL "
    f"(with {MODE_ENV}=external) to brokers of your own"
)

_running: list[Brokers] = []


def choose_mode(
    environ: Mapping[str, str],
    engine: Callable[[], Engine | None] = detect_engine,
    binaries: Callable[[], bool] = local_binaries,
) -> tuple[str, Engine | None]:
    """The broker mode for this session and, for ``container``, the engine to use."""
    forced = environ.get(MODE_ENV, "").strip()
    if forced and forced not in MODES:
        raise BrokerError(f"{MODE_ENV}={forced!r}: choose one of {', '.join(MODES)}")
    if forced == "external" or (
        not forced and (environ.get("AMQP_URL") or environ.get("REDIS_URL"))
    ):
        return "external", None
    if forced == "local":
        return "local", None
    found = engine()
    if found is not None:
        return "container", found
    if forced == "container":
        raise BrokerError(
            f"{MODE_ENV}=container but no container engine answers: run tools/podman/setup"
        )
    if binaries():
        return "local", None
    raise BrokerError(NOTHING_AVAILABLE)


def _workdir() -> Path:
    base = os.environ.get("TEST_TMPDIR")
    return Path(tempfile.mkdtemp(prefix="brokers-", dir=base))


def _tarballs() -> list[Path]:
    return [Path(p) for p in os.environ.get(TARBALLS_ENV, "").split() if p.endswith(".tar")]


def start_brokers() -> Brokers:
    """Start the session's pair and export its URLs (what ``pytest_sessionstart`` does)."""
    mode, engine = choose_mode(os.environ)
    if mode == "container" and engine is not None:
        load_broker_images(engine, _tarballs())
    brokers = start_pair(mode, _workdir(), engine)
    _running.append(brokers)
    os.environ["AMQP_URL"] = brokers.amqp_url
    os.environ["REDIS_URL"] = brokers.redis_url
    return brokers


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """Start the brokers before any test module is imported."""
    try:
        brokers = start_brokers()
    except BrokerError as e:
        pytest.exit(f"brokers: {e}", returncode=pytest.ExitCode.USAGE_ERROR)
    print(f"brokers: {brokers.mode}: {brokers.amqp_url} {brokers.redis_url}")


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Remove the brokers this session started."""
    while _running:
        _running.pop().stop()
