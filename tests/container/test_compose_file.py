"""docker-compose.yml is the rendering of tests/container/stack.py (one description, two uses)."""

from __future__ import annotations

import os
from pathlib import Path

from tests.container.stack import SERVICES, render_compose


def _compose_file() -> Path:
    override = os.environ.get("CONVEYOR_COMPOSE_FILE")
    return (
        Path(override) if override else Path(__file__).resolve().parents[2] / "docker-compose.yml"
    )


def test_compose_file_matches_the_stack_description() -> None:
    assert _compose_file().read_text() == render_compose(), (
        "docker-compose.yml is stale: python3 -m tests.container.stack > docker-compose.yml"
    )


def test_every_dependency_waits_for_health_and_brokers_are_switchable() -> None:
    names = {service.name for service in SERVICES}
    assert names == {"rabbitmq", "redis", "registry", "api", "model_a", "model_b"}
    for service in SERVICES:
        assert set(service.depends_on) <= names
        assert service.healthcheck[0] == "CMD"
    text = render_compose()
    assert "${RABBITMQ_IMAGE:-conveyor/rabbitmq:dev}" in text
    assert "${REDIS_IMAGE:-conveyor/redis:dev}" in text
    assert text.count("condition: service_healthy") == sum(len(s.depends_on) for s in SERVICES)
