"""Redis clients for the services: a bounded pool that waits for a free connection, on one server
or on the primary that Redis Sentinel names.

redis-py's default pool raises ``MaxConnectionsError`` once its connections are all in use; a
service under load must wait for one instead (its own in-flight bound keeps the wait short).

With ``REDIS_SENTINELS`` set, the client asks the sentinels for the primary of
``REDIS_MASTER_NAME`` and reconnects to the new primary after a failover; ``REDIS_URL`` then only
gives the database number and the password.
"""

from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.connection import BlockingConnectionPool
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool

from conveyor.settings import RedisSettings

__all__ = ["redis_client", "redis_client_for"]


class _BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """Connections to the primary Sentinel names; waits for a free one like the plain pool."""


def redis_client(url: str, max_connections: int, timeout: float = 5.0) -> aioredis.Redis:
    """A client of ``url`` whose pool holds at most ``max_connections`` and waits for one.

    ``timeout`` bounds the wait for a free connection and each connect, so an unreachable Redis
    fails fast instead of hanging a request.
    """
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=30,
    )
    return aioredis.Redis(connection_pool=pool)


def sentinel_client(
    sentinels: list[tuple[str, int]],
    master_name: str,
    url: str,
    max_connections: int,
    timeout: float = 5.0,
) -> aioredis.Redis:
    """A client of the primary of ``master_name`` as the ``sentinels`` report it.

    The database and password come from ``url``; ``timeout`` as in ``redis_client``.
    """
    parts = urlsplit(url)
    database = int(parts.path.strip("/") or 0) if parts.scheme != "unix" else 0
    manager = Sentinel(
        sentinels,
        sentinel_kwargs={"socket_timeout": timeout, "socket_connect_timeout": timeout},
    )
    client: aioredis.Redis = manager.master_for(
        master_name,
        connection_pool_class=_BlockingSentinelPool,
        max_connections=max_connections,
        timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=30,
        db=database,
        password=parts.password,
        username=parts.username,
    )
    return client


def redis_client_for(settings: RedisSettings, max_connections: int) -> aioredis.Redis:
    """The service's Redis client: through Sentinel when ``REDIS_SENTINELS`` is set."""
    if settings.redis_sentinels:
        assert settings.redis_master_name is not None  # the settings refuse one without the other
        return sentinel_client(
            list(settings.redis_sentinels),
            settings.redis_master_name,
            settings.redis_url,
            max_connections,
        )
    return redis_client(settings.redis_url, max_connections)
