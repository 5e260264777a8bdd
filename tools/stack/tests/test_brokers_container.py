"""Forced ``container`` mode: the session's brokers run from the images Bazel built."""

from tools.oci.engine import detect_engine
from tools.stack.tests.broker_checks import (
    session_port,
    test_redis_answers_ping,
    test_session_brokers_are_private_and_answer,
)

__all__ = ["test_redis_answers_ping", "test_session_brokers_are_private_and_answer"]


def test_they_run_in_containers_of_the_broker_images() -> None:
    engine = detect_engine()
    assert engine is not None
    names = engine.run("ps", "--format", "{{.Names}} {{.Image}}").stdout
    for variable, kind in (("AMQP_URL", "rabbitmq"), ("REDIS_URL", "redis")):
        assert f"conveyor-broker-{kind}-{session_port(variable)} " in names, names
