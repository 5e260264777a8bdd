"""The refusals experiment's floor server answers every request with the bytes it is given,
and ``gateway_refusal`` reads back one whole answer from a server whose only place is taken."""

from __future__ import annotations

import pytest

from load_testing.experiments.refusals import FloorServer, gateway_refusal
from load_testing.stack import StackError

REFUSAL = (
    b"HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\n"
    b"content-length: 27\r\nretry-after: 1\r\n\r\n"
    b'{"error":{"code":"busy"}}\r\n'
)


def test_the_refusal_read_back_is_the_whole_answer() -> None:
    with FloorServer(REFUSAL) as floor:
        assert gateway_refusal(f"{floor.url}/predict/model_a?timeout=5") == REFUSAL


def test_an_answer_that_is_not_a_refusal_is_an_error() -> None:
    ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"
    with FloorServer(ok) as floor, pytest.raises(StackError, match="expected a 429"):
        gateway_refusal(f"{floor.url}/predict/model_a")
