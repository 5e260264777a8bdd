"""The scenarios' legs without a stack: which legs are kept after their one-call checks, and the
files a REST and a gRPC leg send from."""

from __future__ import annotations

from pathlib import Path

import pytest
from tritonclient.grpc import service_pb2

from load_testing import tensor_payloads as tp
from load_testing.legs import Leg, grpc_file, rest_file, verified
from load_testing.targets import Target
from load_testing.wrk import WrkResult
from tools.stack.ports import free_port


def _leg(name: str, problem: str | None) -> Leg:
    def drive(seconds: float, connections: int) -> WrkResult:
        raise AssertionError("not driven")

    return Leg(Target(name, "http://unused", {}), drive, lambda: problem)


def test_legs_that_answer_wrong_are_skipped_saying_why(capsys: pytest.CaptureFixture[str]) -> None:
    legs = [_leg("a", None), _leg("b", "HTTP 500: no"), _leg("c", None)]
    assert [leg.name for leg in verified(legs)] == ["a", "c"]
    assert capsys.readouterr().out == (
        "b: one call answered wrong (HTTP 500: no); the leg is skipped\n"
    )


def test_a_rest_leg_sends_its_body_from_a_file_named_after_it(tmp_path: Path) -> None:
    body = tp.HttpBody(b"{}", "application/json")
    rest_file("REST JSON", "http://unused", body, tmp_path, least=1, check=lambda _: None)
    assert (tmp_path / "REST_JSON.body").read_bytes() == b"{}"


def test_a_grpc_leg_sends_one_frame_and_a_failed_call_fails_its_check(tmp_path: Path) -> None:
    request = service_pb2.ModelInferRequest(model_name="m")
    _, verify = grpc_file(
        "gRPC raw", f"127.0.0.1:{free_port()}", request, tmp_path, check=lambda _: None
    )
    frame = (tmp_path / "gRPC_raw.grpc").read_bytes()
    assert tp.grpc_unframe(frame) == request.SerializeToString()
    assert (verify() or "").startswith("gRPC error: ")  # nothing listens there
