"""Fixtures of the fault tests: private brokers that the tests kill, and a stack using them."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from tests.faults.brokers import Brokers, PrivateRabbitMQ, PrivateRedis
from tests.integration import stack as stack_module


@pytest.fixture(scope="module")
def brokers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Brokers]:
    """Start a private RabbitMQ and Redis, point the stack helpers at them, stop them after."""
    workdir = tmp_path_factory.mktemp("brokers")
    rabbitmq, redis = PrivateRabbitMQ(workdir), PrivateRedis(workdir)
    saved_env = {name: os.environ.get(name) for name in ("AMQP_URL", "REDIS_URL")}
    saved_module = (stack_module.AMQP_URL, stack_module.REDIS_URL)
    try:
        redis.start()
        rabbitmq.start()
        os.environ["AMQP_URL"], os.environ["REDIS_URL"] = rabbitmq.url, redis.url
        # The stack helpers read these module constants when they start services.
        stack_module.AMQP_URL, stack_module.REDIS_URL = rabbitmq.url, redis.url
        yield Brokers(rabbitmq, redis)
    finally:
        stack_module.AMQP_URL, stack_module.REDIS_URL = saved_module
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        rabbitmq.kill()
        redis.kill()
        shutil.rmtree(workdir, ignore_errors=True)
