"""The callback signature: its header format, and verification as a receiver does it."""

import hashlib
import hmac
import re
import time

from api.callbacks.signing import event_id, sign, signature, verify

SECRET = "s3cret-for-tests"
BODY = b'{"task_id":"abc","status":"done"}'


def _receiver_verifies(secret: str, body: bytes, header: str, tolerance: int = 300) -> bool:
    """The README's receiver, with the standard library only."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    t, v1 = parts.get("t", ""), parts.get("v1", "")
    if not t.isdigit() or abs(time.time() - int(t)) > tolerance:
        return False
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(mac, v1)


def test_the_header_is_a_timestamp_and_a_hex_hmac_of_the_timestamp_and_body() -> None:
    header = sign(SECRET, BODY, timestamp=1_700_000_000)
    assert re.fullmatch(r"t=1700000000,v1=[0-9a-f]{64}", header), header
    expected = hmac.new(SECRET.encode(), b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert header.endswith(expected)
    assert signature(SECRET, 1_700_000_000, BODY) == expected


def test_a_fresh_signature_verifies_with_the_helper_and_with_ten_lines_of_stdlib() -> None:
    header = sign(SECRET, BODY)
    assert verify(SECRET, BODY, header)
    assert _receiver_verifies(SECRET, BODY, header)


def test_a_wrong_secret_a_changed_body_or_a_stale_time_fail() -> None:
    header = sign(SECRET, BODY)
    assert not verify("another secret", BODY, header)
    assert not verify(SECRET, BODY + b" ", header)
    old = sign(SECRET, BODY, timestamp=int(time.time()) - 301)
    assert not verify(SECRET, BODY, old)
    assert verify(SECRET, BODY, old, tolerance=600)
    assert not _receiver_verifies(SECRET, BODY, old)


def test_malformed_headers_fail_and_any_matching_v1_passes() -> None:
    header = sign(SECRET, BODY)
    t = header.split(",")[0]
    for bad in ("", "v1=abc", "t=abc,v1=00", f"{t}", f"{t},{t},v1=00", f"{t},v1=é"):
        assert not verify(SECRET, BODY, bad), bad
    rotated = f"{header},v1={'0' * 64}"  # a second signature (a key being replaced)
    assert verify(SECRET, BODY, rotated)
    assert verify(SECRET, BODY, f"{t},v0=ignored,{header.split(',')[1]}")


def test_the_event_id_names_the_task_and_its_final_status() -> None:
    assert event_id("0123abcd", "done") == "0123abcd.done"
    assert event_id("0123abcd", "cancelled") != event_id("0123abcd", "failed")
