"""Schemathesis against the live gateway's and registry's OpenAPI, with every check.

A real stack (registry, gateway, model_a and model_b workers) is started; schemathesis
generates requests from each ``/openapi.json`` and checks each answer: no 5xx, only the status
codes the schema documents, bodies that fit it, and schema-valid requests accepted.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import CheckFunction
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.integration.stack import Served, Stack

EXAMPLES = 25


@pytest.fixture(scope="module")
def stack() -> Iterator[Served]:
    with Served(RESULT_TTL="60") as stack:
        yield stack


FUZZ = settings(
    max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)


def _fuzz(
    url: str,
    skip: str | None = None,
    unguessable: tuple[str, ...] = (),
    only: str | None = None,
) -> None:
    """Run every operation of the OpenAPI document at ``url``; fail listing what failed.

    (schemathesis' own pytest plugin does not run under this pytest, so the operations are
    driven here with hypothesis.) Operations in ``unguessable`` take a value no generator can
    make valid (a protobuf FileDescriptorSet): every check runs on them but "schema-valid data
    is accepted".
    """
    schema = schemathesis.openapi.from_url(url)
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        if not isinstance(result, Ok):
            failures.append(f"an operation could not be loaded: {result.err()}")
            continue
        operation = result.ok()
        if skip is not None and operation.path.startswith(skip):
            continue
        if only is not None and not operation.path.startswith(only):
            continue
        operations += 1

        excluded: list[CheckFunction] = (
            [positive_data_acceptance] if operation.label in unguessable else []
        )

        @FUZZ
        @given(case=operation.as_strategy())
        def run(case: schemathesis.Case) -> None:
            case.call_and_validate(excluded_checks=excluded)  # noqa: B023 (run now, in this loop)

        try:
            run()
        except Exception as e:  # every failing operation is reported, not only the first
            failures.append(f"{operation.label}: {e}"[:2000])
    assert operations > 0
    assert not failures, "\n\n".join(failures)


def test_gateway(stack: Stack) -> None:
    _fuzz(f"{stack.api_url}/openapi.json", skip="/v2")


def test_gateway_v2(stack: Stack) -> None:
    """The Open Inference Protocol paths, with their own error shape (``{"error": "..."}``).

    ``infer`` takes its body as raw bytes (JSON, or JSON and binary tensors), so the schema
    cannot describe a valid one: every check runs on it but "schema-valid data is accepted"
    (tests/oip sends it real requests)."""
    _fuzz(
        f"{stack.api_url}/openapi.json",
        only="/v2",
        unguessable=(
            "POST /v2/models/{model}/infer",
            "POST /v2/models/{model}/versions/{version}/infer",
        ),
    )


def test_registry(stack: Stack) -> None:
    _fuzz(
        f"{stack.registry_url}/openapi.json",
        unguessable=("POST /models/{name}/instances/{instance_id}",),
    )
