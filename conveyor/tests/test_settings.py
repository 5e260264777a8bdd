"""AMQP_URL takes one node or several; a bad node fails at start-up, naming which one."""

import pytest
from pydantic import ValidationError

from conveyor.settings import AmqpSettings, RedisSettings


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


def test_sentinels_are_host_port_pairs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_SENTINELS", "s1:26379, s2:26380,[::1]:26381")
    monkeypatch.setenv("REDIS_MASTER_NAME", "conveyor")
    settings = RedisSettings()
    assert settings.redis_sentinels == (("s1", 26379), ("s2", 26380), ("::1", 26381))
    assert settings.redis_master_name == "conveyor"
    assert settings.redis_wait_replicas == "auto"


@pytest.mark.parametrize(("value", "expected"), [("auto", "auto"), ("0", 0), ("2", 2)])
def test_wait_replicas_is_auto_or_a_count(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: object
) -> None:
    monkeypatch.setenv("REDIS_WAIT_REPLICAS", value)
    assert RedisSettings().redis_wait_replicas == expected


@pytest.mark.parametrize("value", ["-1", "17", "some", "1.5"])
def test_a_bad_wait_replicas_is_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("REDIS_WAIT_REPLICAS", value)
    with pytest.raises(ValidationError):
        RedisSettings()


def test_no_sentinels_by_default() -> None:
    assert RedisSettings().redis_sentinels == ()


@pytest.mark.parametrize("value", ["s1", "s1:port", ":26379", "s1:0", "s1:70000"])
def test_a_bad_sentinel_is_refused(value: str) -> None:
    with pytest.raises(ValidationError, match="is not host:port"):
        RedisSettings(redis_sentinels=value, redis_master_name="m")  # type: ignore[arg-type]


def test_sentinels_need_a_master_name() -> None:
    with pytest.raises(ValidationError, match="REDIS_SENTINELS needs REDIS_MASTER_NAME"):
        RedisSettings(redis_sentinels="s1:26379")  # type: ignore[arg-type]
