"""The tensors scenario's gRPC side against a stand-in server: the checks' real client, the
framed body h2load posts, and h2load's reading, end to end without a Conveyor stack.

The stand-in is a small in-process ``inference.GRPCInferenceService`` (tritonclient's stubs)
that answers ``ServerLive`` and echoes ``ModelInfer``'s raw inputs as raw outputs, with the
gateway's receive limit (1 MiB, ``MAX_BODY_BYTES``' default).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from tritonclient.grpc import service_pb2, service_pb2_grpc

from load_testing import grpc_calls, h2load
from load_testing import tensor_payloads as tp
from tools.stack.ports import free_port

LIMIT = 1 << 20


class _Echo(service_pb2_grpc.GRPCInferenceServiceServicer):  # type: ignore[misc]
    def ServerLive(self, request: Any, context: Any) -> Any:
        return service_pb2.ServerLiveResponse(live=True)

    def ModelInfer(self, request: Any, context: Any) -> Any:
        response = service_pb2.ModelInferResponse(model_name=request.model_name)
        for given in request.inputs:
            response.outputs.add(name=given.name, datatype=given.datatype, shape=given.shape)
        response.raw_output_contents.extend(request.raw_input_contents)
        return response


@pytest.fixture(scope="module")
def target() -> Iterator[str]:
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4),
        options=[("grpc.max_receive_message_length", LIMIT)],
    )
    service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(_Echo(), server)
    port = free_port()
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(grace=None)


def test_served_is_true_only_where_a_server_answers(target: str) -> None:
    assert grpc_calls.served(target)
    assert not grpc_calls.served(f"127.0.0.1:{free_port()}", timeout=1.0)


def test_one_call_comes_back_as_sent(target: str) -> None:
    tensors = tp.Tensors.sample()
    answer = grpc_calls.infer(target, tp.grpc_request("m", tensors))
    assert tp.check_grpc(answer, tensors) is None
    assert tp.check_grpc(answer, tp.Tensors.sample(seed=2)) == "the image came back changed"


def test_the_receive_limit_is_checked_at_and_past_it(target: str) -> None:
    at = grpc_calls.call_status(target, tp.sized_grpc_request("m", LIMIT))
    assert at == (grpc.StatusCode.OK, "")
    code, message = grpc_calls.call_status(target, tp.sized_grpc_request("m", LIMIT + 1))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert str(LIMIT + 1) in message


@pytest.mark.skipif(shutil.which("h2load") is None, reason="h2load (nghttp2-client) missing")
def test_h2load_posts_the_framed_message_as_grpc(target: str, tmp_path: Path) -> None:
    body = tmp_path / "call.grpc"
    body.write_bytes(tp.grpc_frame(tp.model_a_grpc("m").SerializeToString()))
    result = h2load.run(
        f"http://{target}{grpc_calls.METHOD}",
        body,
        headers=h2load.GRPC_HEADERS,
        seconds=1,
        clients=2,
        warmup=0.5,
    )
    assert result.requests > 0
    assert result.statuses == {200: result.requests}
    assert 0 < result.p50_ms <= result.p99_ms <= result.max_ms
