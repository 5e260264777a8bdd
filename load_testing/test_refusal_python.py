"""The in-process refusal measurement drives the gateway's real protocol and edge: every request
fed to it is answered with the gateway's 429, never by entering the app."""

from __future__ import annotations

import json

from load_testing.refusal_python import python_refusals


def test_each_request_is_answered_with_the_prerendered_429() -> None:
    measured = python_refusals(refusals=2_000)
    head, _, body = measured.answer.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 429 Too Many Requests"
    headers = {name.lower(): value for name, _, value in (h.partition(b": ") for h in lines[1:])}
    assert headers[b"retry-after"] == b"1"
    assert headers[b"x-request-id"]
    assert json.loads(body)["error"]["code"] == "overloaded"
    assert measured.us_per_refusal > 0
