"""The stack a module of this folder gets unless it makes its own ``stack`` fixture."""

from collections.abc import Iterator

import pytest

from tests.integration.stack import Stack


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """A registry and a gateway whose results (and tasks' event streams) last ten minutes, so a
    test may follow, resume and read them again."""
    with Stack(RESULT_TTL="600") as stack:
        yield stack
