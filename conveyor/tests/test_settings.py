"""AMQP_URL takes one node or several; a bad node fails at start-up, naming which one."""

import pytest
from pydantic import ValidationError

from conveyor.settings import AmqpSettings


def test_one_url_is_kept() -> None:
    settings = AmqpSettings(amqp_url="amqp://u:p@rabbit:5672/")
    assert settings.amqp_url == "amqp://u:p@rabbit:5672/"


def test_several_urls_are_normalised() -> None:
    settings = AmqpSettings(amqp_url=" amqp://u:p@a:5672/ , amqps://u:p@b:5671/,")
    assert settings.amqp_url == "amqp://u:p@a:5672/,amqps://u:p@b:5671/"


def test_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMQP_URL", "amqp://u:p@a:5672/,amqp://u:p@b:5672/")
    assert AmqpSettings().amqp_url == "amqp://u:p@a:5672/,amqp://u:p@b:5672/"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("amqp://u:p@a:5672/,http://b:80/", "node 2 of 2: scheme must be one of amqp, amqps"),
        ("amqp://u:p@a:5672/,amqp://:5672/", "node 2 of 2: the URL names no host"),
        ("amqp://u:p@a:notaport/", "node 1 of 1: not a valid URL"),
        (" , ", "names no RabbitMQ node"),
    ],
)
def test_a_bad_node_is_refused(value: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        AmqpSettings(amqp_url=value)
