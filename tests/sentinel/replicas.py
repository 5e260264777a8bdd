"""A Redis primary with one replica, private to a test or benchmark."""

import time
from pathlib import Path

import redis

from tests.cluster.nodes import RedisServer


class PrimaryWithReplica:
    """A private primary and its replica, started and in sync."""

    def __init__(self, root: Path) -> None:
        self.primary = RedisServer(root).start()
        self.replica = RedisServer(root, replica_of=self.primary.port).start()
        client = redis.Redis(port=self.replica.port)
        try:
            for _ in range(300):
                if client.info("replication").get("master_link_status") == "up":
                    break
                time.sleep(0.1)
            else:
                raise RuntimeError("the replica did not sync")
        finally:
            client.close()

    def close(self) -> None:
        """Stop both servers."""
        self.replica.kill()
        self.primary.kill()
