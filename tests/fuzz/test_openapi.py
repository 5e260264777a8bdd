"""Schemathesis, every check and every phase, against the live gateway's and registry's OpenAPI.

A real stack (registry, gateway, model_a and model_b workers) is started, and schemathesis'
command line (from the lock) runs against each ``/openapi.json``: examples, coverage, fuzzing
and stateful phases, with every check (no 5xx, only documented statuses, content types and
headers, bodies that fit the schema, schema-valid requests accepted and invalid ones refused,
``405`` with ``Allow`` for an undocumented method, ...). The gateway is fuzzed with
``{model}`` free (mostly unknown models) and then set to each example model in turn, so every
``/models``, ``/predict`` and ``/v2`` operation also meets a real model; each model's own
operation, ``POST /predict/<name>``, carries its exact schemas.

Checks left out, each for one operation and a reason (``_config``):

- "schema-valid data is accepted" on operations whose schema cannot say what the server
  takes: the generic ``POST /predict/{model}`` once ``{model}`` names a model (it documents
  "an object", any model's message; the model's own operation has the exact schema), the
  protocol's ``infer`` (its body names the model's tensors, which the protocol publishes in
  the model's metadata, not in an OpenAPI schema), model_b's operations (the model refuses,
  with a documented ``422 invalid_argument``, a message that lacks its 4 features: a protobuf
  descriptor cannot say how many elements a repeated field needs), and the registry's
  registration (a protobuf FileDescriptorSet no generator can make).

The gateway runs with ``MIN_TIMEOUT`` above any run time of the models here: a sync call given
less time than its model takes answers a documented ``504`` (tests/integration/test_timeout.py),
which the "no 5xx" check would count as a failure.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.stack import Served

EXAMPLES = 40
"""Examples per operation and phase: the runs take about a minute each on 2 cores."""


_NO_POSITIVE = "checks.positive_data_acceptance.enabled = false"


@pytest.fixture(scope="module")
def stack() -> Iterator[Served]:
    with Served(RESULT_TTL="60", MIN_TIMEOUT="10") as stack:
        yield stack


def _config(model: str | None, stack: Served) -> str:
    """The schemathesis configuration of one run (TOML), with its reasons.

    ``[checks] enabled = true`` turns every check on (what ``--checks all`` does, except that
    the command line's choice would also override the few left out below)."""
    lines = ["[checks]", "enabled = true", ""]
    if model is not None:  # and the version every example model registers
        lines += ["[parameters]", f'"path.model" = "{model}"', '"path.version" = "1"', ""]
    # The generic operation documents any model's message ("an object"): with {model} naming a
    # model (set here, or taken from GET /models by the stateful phase), most objects do not
    # fit it. The model's own operation has the exact schema.
    lines += ["[[operations]]", 'include-path = "/predict/{model}"', _NO_POSITIVE, ""]
    # The protocol's infer request names the model's tensors, published in its metadata; a
    # generate request the model's fields (any other key is refused), published there too.
    lines += [
        "[[operations]]",
        'include-path-regex = "^/v2/.*/(infer|generate|generate_stream)$"',
        _NO_POSITIVE,
        "",
    ]
    # The OpenAI-compatible requests name their model in the body: a generated name is
    # seldom a model's (404) or a valid name at all (400), and no schema can say which are.
    lines += ["[[operations]]", 'include-path-regex = "^/v1/"', _NO_POSITIVE, ""]
    # Load and unload answer 501 Not Implemented, documented: models register themselves.
    lines += [
        "[[operations]]",
        'include-path-regex = "^/v2/repository/models/.*/(load|unload)$"',
        "checks.not_a_server_error.enabled = false",
        "",
    ]
    # model_b refuses (422 invalid_argument, documented) a message without its 4 features.
    lines += ["[[operations]]", f'include-path = "/predict/{stack.model_b}"', _NO_POSITIVE, ""]
    # A schema-valid Idempotency-Key that an earlier example used with another body is a
    # documented 422 (the key's request lives in Redis; no schema can say which keys are
    # taken). model_a's bodies are accepted exactly as its schema says: api:test_json_schema.
    lines += ["[[operations]]", f'include-path = "/predict/{stack.model_a}"', _NO_POSITIVE, ""]
    return "\n".join(lines)


def _schemathesis(url: str, config: str, label: str) -> None:
    """Run schemathesis' CLI on ``url``; fail with its report when it finds anything."""
    directory = Path(os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR") or tempfile.mkdtemp())
    config_file = directory / f"schemathesis-{label}.toml"
    config_file.write_text(config)
    command = [
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(config_file),
        "run", url,
        "--phases", "examples,coverage,fuzzing,stateful",
        "--max-examples", str(EXAMPLES),
        "--workers", "1",  # Python 3.11's ast is not thread-safe (hypothesis reads lambdas)
        "--generation-database", "none",
        "--request-timeout", "60",
        "--no-color",
    ]  # fmt: skip
    with tempfile.TemporaryDirectory() as scratch:  # whatever it writes beside itself
        run = subprocess.run(
            command, capture_output=True, text=True, timeout=900, check=False, cwd=scratch
        )
    report = run.stdout + run.stderr
    (directory / f"schemathesis-{label}.txt").write_text(report)
    assert run.returncode == 0, f"schemathesis ({label}) found failures:\n{report[-30000:]}"
    assert "Tested:" in report, report[-3000:]  # it ran operations, not only loaded the schema


@pytest.mark.parametrize("model", [None, "model_a", "model_b"], ids=["free", "model_a", "model_b"])
def test_gateway(stack: Served, model: str | None) -> None:
    name = None if model is None else getattr(stack, model)
    _schemathesis(f"{stack.api_url}/openapi.json", _config(name, stack), f"gateway-{model}")


def test_every_model_has_its_own_operation(stack: Served) -> None:
    paths = stack.http.get("/openapi.json").json()["paths"]
    assert f"/predict/{stack.model_a}" in paths
    assert f"/predict/{stack.model_b}" in paths


def test_registry(stack: Served) -> None:
    """Last: its fuzzing may register and drop instances of the stack's models."""
    config = "\n".join(
        [
            "[checks]",
            "enabled = true",
            "",
            # A registration carries a protobuf FileDescriptorSet, which no generator can make.
            "[[operations]]",
            'include-path = "/models/{name}/instances/{instance_id}"',
            'include-method = "POST"',
            _NO_POSITIVE,
        ]
    )
    _schemathesis(f"{stack.registry_url}/openapi.json", config, "registry")
