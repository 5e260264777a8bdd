"""The stack a module of this folder gets unless it makes its own ``stack`` fixture.

``tests.integration.stack`` is imported inside the fixture, never at this module's top: pytest
loads this file before the broker plugin's ``pytest_sessionstart`` exports the session's
``AMQP_URL``/``REDIS_URL``, and ``stack`` reads them when first imported.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.integration.stack import Stack


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """A registry and a gateway whose results (and tasks' event streams) last ten minutes, so a
    test may follow, resume and read them again."""
    from tests.integration.stack import Stack

    with Stack(RESULT_TTL="600") as stack:
        yield stack
