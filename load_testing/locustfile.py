"""Locust users for Conveyor's gateway. Runs only inside the Locust subprocess.

Request bodies come from the model's own example (``GET /models/{name}`` -> ``example_request``)
so the scenarios follow the schemas the registry serves; a built-in example is the fallback.
Model names are options (``--model-a``/``--model-b``) so a test can drive a private stack.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Any, ClassVar

import locust.stats
from locust import FastHttpUser, events, task
from locust.argument_parser import LocustArgumentParser
from locust.exception import StopUser

from load_testing.scenarios import V2_READY_PATH

# The runner's progress line reads the history CSV; flush it every second, not every five.
locust.stats.CSV_STATS_FLUSH_INTERVAL_SEC = 1

_FALLBACK_EXAMPLES: dict[str, dict[str, Any]] = {
    "a": {"data": "load test"},
    "b": {"features": [5.1, 3.5, 1.4, 0.2]},
}
_examples: dict[str, dict[str, Any]] = {}


def _add_options(parser: LocustArgumentParser) -> None:
    parser.add_argument("--model-a", default="model_a", help="name of the text model")
    parser.add_argument("--model-b", default="model_b", help="name of the features model")
    parser.add_argument(
        "--registry-url", default="http://127.0.0.1:8001", help="where model examples are"
    )
    parser.add_argument(
        "--async-timeout", type=float, default=30.0, help="seconds to poll one async task"
    )
    parser.add_argument(
        "--think-time",
        type=float,
        default=0.2,
        help="longest pause between a user's requests (0: none, a closed loop)",
    )


events.init_command_line_parser.add_listener(_add_options)  # type: ignore[no-untyped-call]


def _parse_json(response: Any) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


class _GatewayUser(FastHttpUser):
    """Shared plumbing: model names from the options, example bodies from the registry."""

    abstract = True

    def wait_time(self) -> float:
        """A pause between a quarter of ``--think-time`` and all of it (0: no pause)."""
        longest = float(self.environment.parsed_options.think_time)
        return random.uniform(longest / 4, longest) if longest > 0 else 0.0

    def model(self, which: str) -> str:
        """Name of model ``"a"`` or ``"b"`` as given on the command line."""
        return str(getattr(self.environment.parsed_options, f"model_{which}"))

    def example(self, which: str) -> dict[str, Any]:
        """The model's example request, fetched once per process.

        Asked from the gateway's ``/models/{name}`` first, then the registry's; a 404 only means
        "not served there". With neither answering, a built-in example is used.
        """
        name = self.model(which)
        if name not in _examples:
            registry = str(self.environment.parsed_options.registry_url).rstrip("/")
            for base in ("", registry):
                example = self._fetch_example(f"{base}/models/{name}")
                if example is not None:
                    _examples[name] = example
                    break
            else:
                logging.warning("no example_request for %s; using a built-in one", name)
                _examples[name] = _FALLBACK_EXAMPLES[which]
        return _examples[name]

    def _fetch_example(self, url: str) -> dict[str, Any] | None:
        with self.client.get(url, name="/models/[model]", catch_response=True) as response:
            body = _parse_json(response)
            example = body.get("example_request") if isinstance(body, dict) else None
            if response.status_code == 200 and isinstance(example, dict) and example:
                return example
            if response.status_code == 404:
                response.success()
            else:
                response.failure(f"no example_request at {url}: HTTP {response.status_code}")
            return None

    def predict(self, which: str, expect: str) -> None:
        """Synchronous predict; fails unless the answer is JSON holding field ``expect``."""
        name = self.model(which)
        with self.client.post(
            f"/predict/{name}",
            json=self.example(which),
            name=f"/predict/{name}",
            catch_response=True,
        ) as response:
            body = _parse_json(response)
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {response.text[:200]}")
            elif not isinstance(body, dict) or expect not in body:
                response.failure(f"answer lacks {expect!r}: {response.text[:200]}")


class HealthUser(_GatewayUser):
    """``GET /healthz``: the gateway's HTTP round trip without the queue, a same-run baseline."""

    @task
    def healthz(self) -> None:
        """One liveness call; fails unless 200 with status ok."""
        with self.client.get("/healthz", catch_response=True) as response:
            if response.status_code != 200 or _parse_json(response) != {"status": "ok"}:
                response.failure(f"healthz answered {response.status_code}")


class ModelAUser(_GatewayUser):
    """Sync predict on model_a (the seed's text echo)."""

    weight = 3

    @task
    def predict_a(self) -> None:
        """POST /predict/model_a."""
        self.predict("a", "reply")


class ModelBUser(_GatewayUser):
    """Sync predict on model_b (the classifier)."""

    weight = 3

    @task
    def predict_b(self) -> None:
        """POST /predict/model_b."""
        self.predict("b", "label")


class AsyncUser(_GatewayUser):
    """Async submit (202 + task id) then poll ``/tasks/{id}`` until done or failed.

    Besides the HTTP requests it records one ``ASYNC`` entry per task: submit-to-done time.
    """

    weight = 1
    poll_interval: ClassVar[float] = 0.05
    submitted = 0

    @task
    def submit_and_poll(self) -> None:
        """Submit to model_a and model_b alternately and poll the task to the end."""
        which = "ab"[self.submitted % 2]
        self.submitted += 1
        name = self.model(which)
        started = time.perf_counter()
        with self.client.post(
            f"/predict/{name}?mode=async",
            json=self.example(which),
            name=f"/predict/{name}?mode=async",
            catch_response=True,
        ) as response:
            body = _parse_json(response)
            if response.status_code != 202 or not isinstance(body, dict) or "task_id" not in body:
                response.failure(f"HTTP {response.status_code}: {response.text[:200]}")
                return
        status_url = str(body.get("status_url") or f"/tasks/{body['task_id']}")
        error = self._poll(status_url)
        events.request.fire(  # type: ignore[no-untyped-call]
            request_type="ASYNC",
            name=f"{name} submit->done",
            response_time=(time.perf_counter() - started) * 1000,
            response_length=0,
            exception=error,
            context={},
        )

    def _poll(self, status_url: str) -> Exception | None:
        deadline = time.monotonic() + float(self.environment.parsed_options.async_timeout)
        while time.monotonic() < deadline:
            with self.client.get(status_url, name="/tasks/[id]", catch_response=True) as response:
                body = _parse_json(response)
                status = body.get("status") if isinstance(body, dict) else None
                if response.status_code >= 400 or status not in {"pending", "done", "failed"}:
                    response.failure(f"HTTP {response.status_code}: {response.text[:200]}")
                    return RuntimeError(f"bad status answer {response.status_code}")
                if status == "done":
                    return None
                if status == "failed":
                    return RuntimeError(f"task failed: {body.get('error')}")
            time.sleep(self.poll_interval)
        return TimeoutError(
            f"task not done within {self.environment.parsed_options.async_timeout} s"
        )


class V2InferUser(_GatewayUser):
    """KServe-style v2 infer on model_b. Stops itself while ``/v2/health/ready`` is 404."""

    weight = 1

    def on_start(self) -> None:
        """Skip (stop this user) when the gateway has no v2 endpoint yet."""
        with self.client.get(V2_READY_PATH, catch_response=True) as response:
            if response.status_code == 404:
                response.success()
                print(f"v2_infer skipped: {V2_READY_PATH} answered 404 (no v2 endpoint yet)")
                raise StopUser()

    @task
    def infer(self) -> None:
        """POST /v2/models/{model_b}/infer with the example features as one FP64 input."""
        name = self.model("b")
        features = self.example("b").get("features", [])
        body = {
            "inputs": [
                {
                    "name": "features",
                    "shape": [1, len(features)],
                    "datatype": "FP64",
                    "data": features,
                }
            ]
        }
        with self.client.post(
            f"/v2/models/{name}/infer",
            json=body,
            name="/v2/models/[model]/infer",
            catch_response=True,
        ) as response:
            answer = _parse_json(response)
            if (
                response.status_code != 200
                or not isinstance(answer, dict)
                or "outputs" not in answer
            ):
                response.failure(f"HTTP {response.status_code}: {response.text[:200]}")
