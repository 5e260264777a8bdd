"""API keys on a real stack: the gateway wants ``API_KEYS``, the registry ``REGISTRY_KEY``.

Without a key (or with a wrong one) predict, tasks and models answer a JSON 401 that says no
more than that; health stays open; with a key everything works. A worker without the registry
key is refused and exits with the registry's reason; one with it serves.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import httpx
import pytest

from tests.faults.brokers import Brokers
from tests.integration.stack import Service, Stack, wait_until

API_KEY = secrets.token_hex(16)
OTHER_KEY = secrets.token_hex(16)
REGISTRY_KEY = secrets.token_hex(16)


@pytest.fixture
def registry_key() -> Iterator[str]:
    """Every process the stack starts inherits ``REGISTRY_KEY`` (registry and workers)."""
    saved = os.environ.get("REGISTRY_KEY")
    os.environ["REGISTRY_KEY"] = REGISTRY_KEY
    try:
        yield REGISTRY_KEY
    finally:
        if saved is None:
            os.environ.pop("REGISTRY_KEY", None)
        else:
            os.environ["REGISTRY_KEY"] = saved


def _unauthorized(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    error = response.json()["error"]
    assert error["code"] == "unauthorized"
    assert API_KEY not in response.text and OTHER_KEY not in response.text


def test_keys(brokers: Brokers, registry_key: str) -> None:
    with Stack(API_KEYS=f"{OTHER_KEY},{API_KEY}") as stack:
        model = stack.model_name("model_a")
        stack.start_worker("models.model_a", model)
        http = stack.http

        for headers in (
            {},
            {"Authorization": "Bearer wrong-key-wrong-key"},
            {"Authorization": API_KEY},
        ):
            _unauthorized(http.post(f"/predict/{model}", json={"data": "x"}, headers=headers))
            _unauthorized(http.get(f"/models/{model}", headers=headers))
            _unauthorized(http.get("/models", headers=headers))
            _unauthorized(http.get("/tasks/0123456789abcdef", headers=headers))
        assert http.get("/healthz").status_code == 200
        assert http.get("/readyz").status_code == 200

        auth = {"Authorization": f"Bearer {API_KEY}"}
        served = http.post(f"/predict/{model}", json={"data": "x"}, headers=auth)
        assert served.status_code == 200, served.text
        assert served.json() == {"reply": "Processed message: x"}
        other = {"Authorization": f"Bearer {OTHER_KEY}"}
        assert http.get(f"/models/{model}", headers=other).status_code == 200
        submitted = http.post(
            f"/predict/{model}", params={"mode": "async"}, json={"data": "y"}, headers=auth
        )
        assert submitted.status_code == 202, submitted.text
        task = submitted.json()["task_id"]
        wait_until(lambda: http.get(f"/tasks/{task}", headers=auth).json()["status"] == "done", 30)

        # The registry refuses mutating calls without its key, and so a worker without it.
        refused = httpx.post(
            f"{stack.registry_url}/models/{model}/instances/intruder", json={}, timeout=10
        )
        assert refused.status_code == 401, refused.text
        assert refused.json()["error"]["code"] == "unauthorized"
        assert REGISTRY_KEY not in refused.text
        keyless = Service(
            "models.model_a",
            {
                "REGISTRY_URL": stack.registry_url,
                "MODEL_NAME": stack.model_name("keyless"),
                "REGISTRY_KEY": "",
            },
            stack.log_dir,
            "keyless",
        )
        stack.workers.append(keyless)
        keyless.process.wait(60)
        assert keyless.process.returncode != 0, keyless.log()
        assert "refused" in keyless.log(), keyless.log()
        assert REGISTRY_KEY not in keyless.log()
