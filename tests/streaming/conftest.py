"""The session's gateway (target.py)."""

from collections.abc import Iterator

import pytest

from tests.streaming.target import Target, streaming_target


@pytest.fixture(scope="session")
def target() -> Iterator[Target]:
    with streaming_target() as found:
        yield found
