"""docker-compose.yml (and its opt-in brokers file) are renderings of tools/stack/services.py."""

from __future__ import annotations

import os
from pathlib import Path

from tools.stack.compose import render_brokers_override, render_compose
from tools.stack.services import SERVICES


def _compose_file(variable: str, name: str) -> Path:
    override = os.environ.get(variable)
    return Path(override) if override else Path(__file__).resolve().parents[2] / name


def test_compose_file_matches_the_stack_description() -> None:
    assert _compose_file("CONVEYOR_COMPOSE_FILE", "docker-compose.yml").read_text() == (
        render_compose()
    ), "docker-compose.yml is stale: python3 -m tools.stack.compose > docker-compose.yml"


def test_brokers_override_matches_the_stack_description() -> None:
    path = _compose_file("CONVEYOR_COMPOSE_BROKERS_FILE", "docker-compose.brokers.yml")
    assert path.read_text() == render_brokers_override(), (
        "docker-compose.brokers.yml is stale: "
        "python3 -m tools.stack.compose --brokers > docker-compose.brokers.yml"
    )


def test_every_dependency_waits_for_health_and_brokers_are_switchable() -> None:
    names = {service.name for service in SERVICES}
    assert names == {
        "rabbitmq",
        "redis",
        "registry",
        "api",
        "model_a",
        "model_b",
        "model_c",
        "prometheus",
        "traceview",
    }
    for service in SERVICES:
        assert set(service.depends_on) <= names
        assert service.healthcheck[0] == "CMD"
    text = render_compose()
    assert "${RABBITMQ_IMAGE:-conveyor/rabbitmq:dev}" in text
    assert "${REDIS_IMAGE:-conveyor/redis:dev}" in text
    assert text.count("condition: service_healthy") == sum(len(s.depends_on) for s in SERVICES)


def test_runs_beside_host_brokers_gateway_and_management_ui_stay_published() -> None:
    text = render_compose()
    assert ':5672"' not in text and ':6379"' not in text, "broker ports are opt-in"
    assert '"${CONVEYOR_API_PORT:-8000}:8000"' in text
    assert '"${CONVEYOR_GRPC_PORT:-8081}:8081"' in text
    assert '"${CONVEYOR_RABBITMQ_MANAGEMENT_PORT:-15672}:15672"' in text
    override = render_brokers_override()
    assert '"${CONVEYOR_RABBITMQ_PORT:-5672}:5672"' in override
    assert '"${CONVEYOR_REDIS_PORT:-6379}:6379"' in override
