"""Redis clients for the services: a bounded pool that waits for a free connection.

redis-py's default pool raises ``MaxConnectionsError`` once its connections are all in use; a
service under load must wait for one instead (its own in-flight bound keeps the wait short).
"""

import redis.asyncio as aioredis

__all__ = ["redis_client"]


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
