"""The session's gateway: ``OIP_BASE_URL``; a real stack of processes when ``OIP_STACK=1``
(real_stack.py); else the real gateway app with fakes behind it (target.py)."""

import os
from collections.abc import Iterator

import pytest

from tests.oip.target import Target, gateway_target


@pytest.fixture(scope="session")
def target() -> Iterator[Target]:
    if os.environ.get("OIP_STACK") == "1" and not os.environ.get("OIP_BASE_URL"):
        from tests.oip.real_stack import real_stack_target

        with real_stack_target() as found:
            yield found
        return
    with gateway_target() as found:
        yield found
