"""Done-when of issue 33 (part 1): our wheels pip-installed into a clean venv serve a model
written outside the repository, and conveyor-client drives the real stack.

A fresh venv (host CPython 3.11) gets ``conveyor-worker``, ``conveyor-client`` and grpcio-tools
with ``pip install --no-index`` (the locked wheels rebuilt from ``@pypi``, tests/wheels/
locked_wheels.py); a model in a temporary directory, its ``.proto`` compiled by the venv's
grpcio-tools, runs with ``conveyor-worker run echo_model:Echo`` against a real registry and
gateway (``MAX_INFLIGHT=1``, an API key, gRPC on) on the test's brokers. The client runs inside
the venv too (``client_script.py``), so it imports only what the wheel installed.
"""

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import aio_pika
import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton

from tests.integration.stack import START_TIMEOUT, Service, Stack, free_port, wait_until
from tests.wheels import byom

KEY = "wheels-test-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
WHEELS = [Path(p) for p in os.environ["CONVEYOR_WHEELS"].split()]
SITE = Path(aio_pika.__file__).resolve().parent.parent
CLIENT_SCRIPT = Path(__file__).with_name("client_script.py").resolve()
# The environment of the venv's processes: none of the test's PYTHONPATH (its runfiles).
CLEAN = {"PATH": "/usr/bin:/bin"}


class Installed:
    """The venv, the user's project, and a stack serving the project's model from the venv."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="conveyor-byom-"))
        self.bin = byom.make_venv(self.root, WHEELS, SITE)
        self.project = self.root / "project"
        byom.write_model(self.project, self.bin)
        self.grpc_port = free_port()
        self.stack = Stack(GRPC_PORT=str(self.grpc_port), API_KEYS=KEY, MAX_INFLIGHT="1")
        try:
            self.model = self.stack.model_name("echo")
            self.worker = self._start_worker()
        except BaseException:
            self.stack.close()
            raise

    def _start_worker(self) -> Service:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.root),
            "AMQP_URL": self.stack.amqp_url,
            "REDIS_URL": self.stack.redis_url,
            "REGISTRY_URL": self.stack.registry_url,
            "MODEL_NAME": self.model,
            "WORKER_CONCURRENCY": "1",
            "PYTHONPATH": str(self.project),
            "PYTHONUNBUFFERED": "1",
        }
        argv = [str(self.bin / "conveyor-worker"), "run", "echo_model:Echo"]
        worker = Service(
            "conveyor-worker", env, self.stack.log_dir, "byom", argv=argv, exact_env=True
        )
        self.stack.workers.append(worker)

        def registered() -> bool:
            if not worker.alive():
                raise AssertionError(f"conveyor-worker exited:\n{worker.log()}")
            return self.stack.instances(self.model) > 0

        wait_until(registered, START_TIMEOUT, what=f"{self.model} registered")
        return worker

    def close(self) -> None:
        self.stack.close()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def installed() -> Iterator[Installed]:
    served = Installed()
    try:
        yield served
    finally:
        served.close()


def test_the_venv_has_only_what_pip_installed(installed: Installed) -> None:
    code = "import worker_base, conveyor_client, conveyor; print(worker_base.__file__)"
    out = subprocess.run([str(installed.bin / "python"), "-c", code], capture_output=True,
                         text=True, check=True, env=CLEAN, cwd=installed.root)  # fmt: skip
    assert out.stdout.startswith(str(installed.root / "venv"))
    # The worker (started from the runfiles directory) imported the venv's worker_base too.
    assert f"worker_base from {installed.root / 'venv'}" in installed.worker.log()


def test_conveyor_worker_help_and_a_bad_target(installed: Installed) -> None:
    worker = str(installed.bin / "conveyor-worker")
    help_text = subprocess.run([worker, "run", "--help"], capture_output=True, text=True,
                               check=True, env=CLEAN, cwd=installed.root)  # fmt: skip
    assert "MODULE:CLASS" in help_text.stdout
    bad = subprocess.run([worker, "run", "echo_model:Nope"], capture_output=True, text=True,
                         cwd=installed.project, env=CLEAN)  # fmt: skip
    assert bad.returncode == 2
    assert "echo_model" in bad.stderr and "Nope" in bad.stderr
    malformed = subprocess.run([worker, "run", "no_colon"], capture_output=True, text=True,
                               env=CLEAN, cwd=installed.root)  # fmt: skip
    assert malformed.returncode == 2
    assert "package.module:ModelClass" in malformed.stderr


def test_rest_predict(installed: Installed) -> None:
    response = httpx.post(f"{installed.stack.api_url}/predict/{installed.model}",
                          json={"text": "hello"}, headers=AUTH, timeout=30)  # fmt: skip
    assert response.status_code == 200, response.text
    assert response.json() == {"text": "HELLO", "length": 5}


def test_oip_rest_infer(installed: Installed) -> None:
    request = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["abc"]}]}
    response = httpx.post(f"{installed.stack.api_url}/v2/models/{installed.model}/infer",
                          json=request, headers=AUTH, timeout=30)  # fmt: skip
    assert response.status_code == 200, response.text
    outputs = {o["name"]: o["data"] for o in response.json()["outputs"]}
    assert outputs == {"text": ["ABC"], "length": [3]}


def test_grpc_infer(installed: Installed) -> None:
    client = triton.InferenceServerClient(f"127.0.0.1:{installed.grpc_port}")
    try:
        text = triton.InferInput("text", [1], "BYTES")
        text.set_data_from_numpy(np.array(["grpc"], dtype=np.object_))
        result = client.infer(installed.model, [text], headers={"authorization": f"Bearer {KEY}"})
        assert result.as_numpy("text").tolist() == [b"GRPC"]
        assert result.as_numpy("length").tolist() == [4]
    finally:
        client.close()


def test_the_client_against_the_stack(installed: Installed) -> None:
    """Every call of Client and AsyncClient, from the venv (client_script.py prints a report)."""
    env = {**CLEAN, "HOME": str(installed.root)}
    run = subprocess.run(
        [str(installed.bin / "python"), str(CLIENT_SCRIPT), installed.stack.api_url, KEY,
         installed.model],
        capture_output=True, text=True, env=env, timeout=180, cwd=installed.root,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(run.stdout.strip().splitlines()[-1])
    for flavour in ("sync", "async"):
        got = report[flavour]
        assert got["predict"] == {"text": "HI", "length": 2}
        assert got["predict_version"] == {"text": "V", "length": 1}
        assert got["wait"] == {"status": "done", "result": {"text": "LATER", "length": 5}}
        assert got["status"] == "done"
        assert got["cancel"] == "cancelled"
        assert got["conflict"] == ["ConflictError", 409, "task_conflict"]
        assert got["stream"][-1] == ["Done", {"text": "STREAM", "length": 6}]
        assert ["Piece", {"text": "STREAM", "length": 6}] in got["stream"]
        assert got["invalid"] == [
            "InvalidRequestError",
            422,
            "invalid_argument",
            "text",
            installed.model,
        ]
        assert got["not_found"][:3] == ["NotFoundError", 404, "model_not_found"]
        assert got["unauthorized"] == ["UnauthorizedError", 401, "unauthorized"]
        # MAX_INFLIGHT=1 while a slow request holds the gateway: 429, Retry-After, retried.
        assert got["retry"]["result"] == {"text": "FAST", "length": 4}
        assert got["retry"]["sleeps"] and all(s == 1.0 for s in got["retry"]["sleeps"])
        assert got["no_retry"][:3] == ["OverloadedError", 429, "overloaded"]
        assert got["no_retry"][3] == 1.0
