"""Which broker mode a test session gets (the modes themselves: test_brokers_*.py)."""

import pytest

from tools.oci.engine import Engine
from tools.stack.brokers import BrokerError
from tools.stack.pytest_plugin import choose_mode

ENGINE = Engine("podman", ("podman",))


def test_container_is_the_default_where_an_engine_answers() -> None:
    assert choose_mode({}, lambda: ENGINE, lambda: True) == ("container", ENGINE)


def test_local_without_an_engine() -> None:
    assert choose_mode({}, lambda: None, lambda: True) == ("local", None)


def test_external_only_when_urls_are_given_or_forced() -> None:
    given = {"AMQP_URL": "amqp://guest:guest@broker:5672/"}
    assert choose_mode(given, lambda: ENGINE, lambda: True) == ("external", None)
    forced = {"CONVEYOR_TEST_BROKERS": "external"}
    assert choose_mode(forced, lambda: ENGINE, lambda: True) == ("external", None)


def test_a_forced_mode_wins_over_urls() -> None:
    env = {"CONVEYOR_TEST_BROKERS": "local", "REDIS_URL": "redis://elsewhere:6379/0"}
    assert choose_mode(env, lambda: ENGINE, lambda: True) == ("local", None)


def test_nothing_available_names_what_to_install() -> None:
    with pytest.raises(BrokerError, match=r"tools/podman/setup.*rabbitmq-server redis-server"):
        choose_mode({}, lambda: None, lambda: False)


def test_forced_container_without_engine_says_so() -> None:
    with pytest.raises(BrokerError, match="no container engine answers"):
        choose_mode({"CONVEYOR_TEST_BROKERS": "container"}, lambda: None, lambda: True)


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(BrokerError, match="choose one of container, local, external"):
        choose_mode({"CONVEYOR_TEST_BROKERS": "docker"}, lambda: ENGINE, lambda: True)
