"""Idempotency keys: one task per key and request, a clear 422 for a reused key."""

from typing import Any

import pytest

from api.exceptions import InvalidRequest
from api.idempotency import IdempotencyKeys, check_key, fingerprint


class FakeRedis:
    """``SET NX EX``, ``GET`` and ``DELETE`` on a dict (the TTL is recorded, not enforced)."""

    def __init__(self) -> None:
        self.values: dict[str, bytes] = {}
        self.ttls: dict[str, int] = {}

    async def set(self, name: str, value: str, *, nx: bool, ex: int) -> bool:
        if nx and name in self.values:
            return False
        self.values[name], self.ttls[name] = value.encode(), ex
        return True

    async def get(self, name: str) -> bytes | None:
        return self.values.get(name)

    async def delete(self, name: str) -> int:
        return int(self.values.pop(name, None) is not None)


def _keys() -> tuple[IdempotencyKeys, FakeRedis]:
    redis = FakeRedis()
    keys: Any = IdempotencyKeys(redis, ttl_seconds=60)  # type: ignore[arg-type]
    return keys, redis


@pytest.mark.asyncio
async def test_the_first_submit_claims_and_later_ones_get_its_task() -> None:
    keys, redis = _keys()
    same = fingerprint("m", None, 0, b"payload")
    first = await keys.claim("k-1", same, "task-1", "2", "m")
    assert (first.first, first.task_id, first.version) == (True, "task-1", "2")
    again = await keys.claim("k-1", same, "task-2", "3", "m")
    assert (again.first, again.task_id, again.version) == (False, "task-1", "2")
    assert list(redis.ttls.values()) == [60]
    assert "k-1" not in next(iter(redis.values))  # the key itself is stored hashed


@pytest.mark.asyncio
async def test_a_key_used_for_another_request_is_refused_naming_the_task() -> None:
    keys, _ = _keys()
    await keys.claim("k", fingerprint("m", None, 0, b"a"), "task-1", "1", "m")
    with pytest.raises(InvalidRequest, match="task-1") as caught:
        await keys.claim("k", fingerprint("m", None, 0, b"b"), "task-2", "1", "m")
    assert caught.value.field == "Idempotency-Key"


@pytest.mark.asyncio
async def test_a_released_claim_lets_the_retry_make_the_task() -> None:
    keys, _ = _keys()
    same = fingerprint("m", None, 0, b"a")
    await keys.claim("k", same, "task-1", "1", "m")
    await keys.release("k", "task-2")  # not its task: kept
    assert not (await keys.claim("k", same, "task-3", "1", "m")).first
    await keys.release("k", "task-1")
    assert (await keys.claim("k", same, "task-4", "1", "m")).task_id == "task-4"


def test_the_fingerprint_covers_model_version_priority_and_payload() -> None:
    base = fingerprint("m", None, 0, b"p")
    assert base == fingerprint("m", "", 0, b"p")  # no version asked: the default
    others = {
        fingerprint("n", None, 0, b"p"),
        fingerprint("m", "2", 0, b"p"),
        fingerprint("m", None, 5, b"p"),
        fingerprint("m", None, 0, b"q"),
        fingerprint("m2", None, 0, b""),
    }
    assert base not in others and len(others) == 5


@pytest.mark.parametrize("key", ["", "a b", "é", "x" * 256, "tab\there"])
def test_keys_are_visible_ascii_up_to_255(key: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        check_key(key, "m")
    assert caught.value.field == "Idempotency-Key"
    check_key("x" * 255, "m")
    check_key("order-42:retry_ok/~!", "m")
