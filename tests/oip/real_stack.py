"""The v2 tests against a real stack: registry, gateway and both example models as processes."""

from collections.abc import Iterator
from contextlib import contextmanager

from tests.integration.stack import Stack
from tests.oip.target import Target


@contextmanager
def real_stack_target() -> Iterator[Target]:
    """Start a stack serving model_a and model_b under unique names; stop it when the block ends."""
    with Stack(RESULT_TTL="600") as stack:
        model_a = stack.model_name("model_a")
        model_b = stack.model_name("model_b")
        stack.start_worker("models.model_a", model_a)
        stack.start_worker("models.model_b", model_b)
        yield Target(stack.api_url, model_a, model_b)
