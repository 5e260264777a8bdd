"""ModelStreamInfer over real gRPC on loopback, with fakes behind it: a response per piece,
Triton's final-response parameters, errors per request, requests side by side."""

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from api.exceptions import Overloaded
from api.grpc.tests.served import served
from api.oip.tests.fakes import (
    FakeCatalog,
    FakeDispatcher,
    echo,
    failed,
    model_a,
    pieces,
    restarted_after,
    text_model,
    word_list,
    words,
)
from api.oip.tests.text_pb2 import TextRequest
from proto.oip import grpc_service_pb2 as pb

pytestmark = pytest.mark.asyncio

FINAL = "triton_final_response"


def _fakes() -> tuple[FakeCatalog, FakeDispatcher]:
    catalog = FakeCatalog([*model_a(), *text_model()])
    return catalog, FakeDispatcher({"model_a": echo}, scripts={"model_t": words})


def _request(
    prompt: str, max_tokens: int, seed: int, request_id: str = "r", empty_final: bool = False
) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="model_t", id=request_id)
    for name, datatype, contents in (
        ("prompt", "BYTES", {"bytes_contents": [prompt.encode()]}),
        ("max_tokens", "INT32", {"int_contents": [max_tokens]}),
        ("seed", "INT64", {"int64_contents": [seed]}),
    ):
        tensor = request.inputs.add(name=name, datatype=datatype, shape=[1])
        tensor.contents.MergeFrom(pb.InferTensorContents(**contents))
    if empty_final:
        request.parameters["triton_enable_empty_final_response"].bool_param = True
    return request


def _expected(max_tokens: int, seed: int) -> list[str]:
    return word_list(TextRequest(max_tokens=max_tokens, seed=seed).SerializeToString())


async def _gen(requests: Sequence[pb.ModelInferRequest]) -> AsyncIterator[pb.ModelInferRequest]:
    for request in requests:
        yield request


async def _responses(stub: Any, requests: Sequence[pb.ModelInferRequest]) -> list[Any]:
    return [response async for response in stub.ModelStreamInfer(_gen(requests))]


def _text(response: Any) -> str:
    [output] = response.infer_response.outputs
    assert (output.name, output.datatype) == ("text", "BYTES")
    return str(output.contents.bytes_contents[0].decode())


async def test_a_response_per_piece() -> None:
    catalog, dispatcher = _fakes()
    async with served(catalog=catalog, dispatcher=dispatcher) as s:
        responses = await _responses(s.stub, [_request("hi", 3, 7)])
    assert [_text(r) for r in responses] == _expected(3, 7)
    for response in responses:
        assert response.error_message == ""
        answer = response.infer_response
        assert (answer.model_name, answer.model_version, answer.id) == ("model_t", "1", "r")
        assert answer.parameters[FINAL].bool_param is False
    sent = TextRequest.FromString(dispatcher.streams[0].payload)
    assert (sent.prompt, sent.max_tokens, sent.seed) == ("hi", 3, 7)


async def test_the_empty_final_response_when_asked() -> None:
    catalog, dispatcher = _fakes()
    async with served(catalog=catalog, dispatcher=dispatcher) as s:
        responses = await _responses(s.stub, [_request("hi", 2, 1, empty_final=True)])
    *answers, last = responses
    assert [_text(r) for r in answers] == _expected(2, 1)
    assert not last.infer_response.outputs
    assert last.infer_response.id == "r"
    assert last.infer_response.parameters[FINAL].bool_param is True


async def test_requests_side_by_side_and_errors_per_request() -> None:
    catalog, dispatcher = _fakes()
    dispatcher.gap = 0.01
    requests = [
        _request("a", 3, 1, "one"),
        pb.ModelInferRequest(model_name="nope", id="two"),
        _request("b", 2, 2, "three"),
    ]
    async with served(catalog=catalog, dispatcher=dispatcher) as s:
        responses = await _responses(s.stub, requests)
    by_id: dict[str, list[Any]] = {}
    for response in responses:
        by_id.setdefault(response.infer_response.id, []).append(response)
    assert [_text(r) for r in by_id["one"]] == _expected(3, 1)
    assert [_text(r) for r in by_id["three"]] == _expected(2, 2)
    [error] = by_id["two"]
    assert "nope" in error.error_message
    assert error.infer_response.parameters[FINAL].bool_param is True


async def test_a_failure_mid_stream_ends_that_request() -> None:
    catalog, dispatcher = _fakes()
    dispatcher.scripts["model_t"] = lambda model, payload: [*pieces([" a"]), failed(model, "no")]
    async with served(catalog=catalog, dispatcher=dispatcher) as s:
        first, error = await _responses(s.stub, [_request("p", 3, 1)])
    assert _text(first) == " a"
    assert error.error_message == "no"


async def test_an_overloaded_dispatcher_is_an_error_message() -> None:
    catalog, dispatcher = _fakes()
    dispatcher.error = Overloaded("full")
    async with served(catalog=catalog, dispatcher=dispatcher) as s:
        [error] = await _responses(s.stub, [_request("p", 3, 1)])
    assert error.error_message == "full"


async def test_a_restart_is_hidden() -> None:
    catalog, dispatcher = _fakes()
    dispatcher.scripts["model_t"] = restarted_after(1)
    async with served(catalog=catalog, dispatcher=dispatcher) as s:
        responses = await _responses(s.stub, [_request("p", 3, 4)])
    assert [_text(r) for r in responses] == _expected(3, 4)


async def test_a_model_that_answers_once() -> None:
    catalog, dispatcher = _fakes()
    request = pb.ModelInferRequest(model_name="model_a", id="x")
    tensor = request.inputs.add(name="data", datatype="BYTES", shape=[1])
    tensor.contents.bytes_contents.append(b"hello")
    async with served(catalog=catalog, dispatcher=dispatcher) as s:
        [response] = await _responses(s.stub, [request])
    assert _text_of(response, "reply") == "Processed message: hello"


def _text_of(response: Any, name: str) -> str:
    [output] = response.infer_response.outputs
    assert output.name == name
    return str(output.contents.bytes_contents[0].decode())


async def test_cancelling_the_call_stops_the_generation() -> None:
    catalog, dispatcher = _fakes()
    dispatcher.gap = 0.05
    async with served(catalog=catalog, dispatcher=dispatcher) as s:
        call = s.stub.ModelStreamInfer(_gen([_request("p", 50, 1)]))
        await call.read()
        call.cancel()
        for _ in range(100):
            if dispatcher.stopped:
                break
            await asyncio.sleep(0.02)
    assert dispatcher.stopped == [0]
