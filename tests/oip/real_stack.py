"""The v2 tests against a real stack: registry, gateway and both example models as processes."""

from collections.abc import Iterator
from contextlib import contextmanager

from tests.integration.stack import Served
from tests.oip.target import Target


@contextmanager
def real_stack_target() -> Iterator[Target]:
    """Start a stack serving model_a and model_b under unique names; stop it when the block ends."""
    with Served(RESULT_TTL="600") as stack:
        yield Target(stack.api_url, stack.model_a, stack.model_b)
