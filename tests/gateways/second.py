"""A second gateway process on a stack's brokers and registry."""

import contextlib
import os
from collections.abc import Iterator

import httpx

from tests.integration.stack import Service, Stack, free_port, wait_until


@contextlib.contextmanager
def second_gateway(stack: Stack, **env: str) -> Iterator[tuple[str, Service]]:
    """Start another gateway for ``stack`` on a free port (``env`` added to its environment);
    yield its URL and process once it is ready; stop it at the end."""
    port = free_port()
    gateway = Service(
        "api",
        {
            "AMQP_URL": os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"),
            "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
            "API_PORT": str(port),
            "REGISTRY_URL": stack.registry_url,
            "RESULT_TTL": "600",
            # gRPC off unless asked, as in a Stack: its default port (8081) may be taken by a
            # stack running beside this one.
            "GRPC_PORT": "0",
            **env,
        },
        stack.log_dir,
        "api-2",
    )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if not gateway.alive():
            raise AssertionError(f"the second gateway exited:\n{gateway.log()}")
        return httpx.get(f"{url}/readyz", timeout=5.0).status_code == 200

    try:
        try:
            wait_until(ready, 120.0, what="second gateway ready")
        except TimeoutError as e:
            raise TimeoutError(f"{e}; its log:\n{gateway.log()}") from None
        yield url, gateway
    finally:
        gateway.stop()
