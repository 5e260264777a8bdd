"""The session's gateway (see target.py): ``OIP_BASE_URL``, or the app with fakes behind it."""

from collections.abc import Iterator

import pytest

from tests.oip.target import Target, gateway_target


@pytest.fixture(scope="session")
def target() -> Iterator[Target]:
    with gateway_target() as found:
        yield found
