"""Schemathesis against the live gateway's and registry's OpenAPI, with every check.

A real stack (registry, gateway, model_a and model_b workers) is started; schemathesis
generates requests from each ``/openapi.json`` and checks each answer: no 5xx, only the status
codes the schema documents, bodies that fit it, and schema-valid requests accepted.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from tests.integration.stack import Stack

EXAMPLES = 25


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with Stack(RESULT_TTL="60") as stack:
        stack.start_worker("models.model_a", stack.model_name("model_a"))
        stack.start_worker("models.model_b", stack.model_name("model_b"))
        yield stack


@pytest.fixture(scope="module")
def gateway_schema(stack: Stack) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{stack.api_url}/openapi.json")


@pytest.fixture(scope="module")
def registry_schema(stack: Stack) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{stack.registry_url}/openapi.json")


# /v2 is the Open Inference Protocol, with its own error shape and its own tests (tests/oip).
gateway = schemathesis.pytest.from_fixture("gateway_schema").exclude(path_regex="^/v2")
registry = schemathesis.pytest.from_fixture("registry_schema")

FUZZ = settings(
    max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)


@gateway.parametrize()
@FUZZ
def test_gateway(case: schemathesis.Case) -> None:
    case.call_and_validate()


@registry.parametrize()
@FUZZ
def test_registry(case: schemathesis.Case) -> None:
    case.call_and_validate()
