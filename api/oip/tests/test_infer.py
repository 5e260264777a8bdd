"""Inference request bodies in (JSON, binary, compressed), response bodies out."""

import gzip
import json
import struct
import zlib
from typing import Any

import pytest

from api.oip.binary import HEADER_LENGTH
from api.oip.exceptions import InvalidInferRequest
from api.oip.infer import (
    InferRequest,
    WantedOutput,
    decode_inputs,
    infer_options,
    parse_body,
    render_response,
    request_payload,
    wanted_outputs,
)
from api.oip.tensors import Tensor, TensorSpec, mapping_for
from proto import model_b_pb2


def _request(**document: Any) -> InferRequest:
    return InferRequest.model_validate({"inputs": [], **document})


def _input(name: str, shape: list[int], datatype: str, **rest: Any) -> dict[str, Any]:
    return {"name": name, "shape": shape, "datatype": datatype, **rest}


def test_json_body_with_nested_data_is_flattened_row_major() -> None:
    body = json.dumps(
        {"id": "7", "inputs": [_input("m", [2, 2], "INT32", data=[[1, 2], [3, 4]])]}
    ).encode()
    request, binary = parse_body(body, None, None)
    assert (request.id, binary) == ("7", b"")
    assert decode_inputs(request, binary) == [Tensor("m", "INT32", (2, 2), [1, 2, 3, 4])]


def test_binary_body_as_tritonclient_sends_it() -> None:
    raw_features = struct.pack("<4f", 5.0, 3.5, 1.25, 0.5)
    raw_words = struct.pack("<I", 2) + b"hi"
    header = json.dumps(
        {
            "inputs": [
                _input("features", [1, 4], "FP32", parameters={"binary_data_size": 16}),
                _input("words", [1], "BYTES", parameters={"binary_data_size": 6}),
                _input("flag", [1], "BOOL", data=[True]),
            ]
        }
    ).encode()
    request, binary = parse_body(header + raw_features + raw_words, str(len(header)), None)
    assert decode_inputs(request, binary) == [
        Tensor("features", "FP32", (1, 4), [5.0, 3.5, 1.25, 0.5]),
        Tensor("words", "BYTES", (1,), [b"hi"]),
        Tensor("flag", "BOOL", (1,), [True]),
    ]


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compressed_bodies_are_accepted(encoding: str) -> None:
    body = json.dumps({"inputs": [_input("x", [1], "FP64", data=[1])]}).encode()
    packed = gzip.compress(body) if encoding == "gzip" else zlib.compress(body)
    request, _ = parse_body(packed, None, encoding)
    assert request.inputs[0].name == "x"


@pytest.mark.parametrize(
    ("body", "header", "encoding", "message"),
    [
        (b"{oops", None, None, "not JSON"),
        (b"[" * 100_000 + b"]" * 100_000, None, None, "not JSON"),
        (b'{"inputs": [{"name": "x"}]}', None, None, "inputs.0.shape: Field required"),
        (b'{"inputs": [{"name": "x", "shape": [-1], "datatype": "FP32"}]}', None, None, "0"),
        (b"{}", None, None, "inputs: Field required"),
        (b"{}", None, "br", "Content-Encoding 'br' is not supported"),
        (b"not gzip", None, "gzip", "not valid gzip data"),
        (b"{}", "x", None, HEADER_LENGTH),
    ],
)
def test_malformed_bodies_are_400s(
    body: bytes, header: str | None, encoding: str | None, message: str
) -> None:
    with pytest.raises(InvalidInferRequest, match=message):
        parse_body(body, header, encoding)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (_input("x", [1], "FP8", data=[1]), "unknown datatype 'FP8'"),
        (_input("x", [2], "FP32", data=[1.0]), r"shape \[2\], i.e. 2 elements, but 1 were given"),
        (_input("x", [1], "FP32"), "needs data"),
        (_input("x", [1], "FP32", data=5), "needs data"),
        (_input("x", [1], "INT32", data=[1.5]), "must be an integer, got 1.5"),
        (_input("x", [1], "INT8", data=[300]), "out of the range of INT8"),
        (_input("x", [1], "FP32", data=[True]), "must be a number"),
        (_input("x", [1], "FP32", data=["1"]), "must be a number"),
        (_input("x", [1], "BOOL", data=[1]), "must be true or false"),
        (_input("x", [1], "BYTES", data=[1]), "must be a string"),
        (
            _input("x", [1], "BYTES", data=["a"], parameters={"binary_data_size": 0}),
            "both data and binary_data_size",
        ),
        (
            _input("x", [1], "BYTES", data=["a"], parameters={"shared_memory_region": "r"}),
            "shared memory is not supported",
        ),
    ],
)
def test_bad_inputs_are_refused_naming_the_input(given: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInferRequest, match=message) as caught:
        decode_inputs(_request(inputs=[given]), b"")
    assert "'x'" in caught.value.message


def test_an_input_given_twice_and_unclaimed_binary_data_are_refused() -> None:
    twice = _request(inputs=[_input("x", [1], "FP64", data=[1])] * 2)
    with pytest.raises(InvalidInferRequest, match="given twice"):
        decode_inputs(twice, b"")
    with pytest.raises(InvalidInferRequest, match="3 bytes of binary data"):
        decode_inputs(_request(inputs=[_input("x", [1], "FP64", data=[1])]), b"abc")


def _options(parameters: dict[str, Any] | None = None, request_id: str | None = None) -> Any:
    return infer_options(parameters or {}, request_id, 30, 60)


def test_parameters_give_the_task_its_timeout_priority_and_id() -> None:
    options = _options({"timeout": 2_500_000, "priority": 1, "custom": "x"}, "req-1")
    assert (options.request_id, options.timeout, options.priority) == ("req-1", 2.5, 9)
    assert options.binary_output is False
    defaults = _options()
    assert (defaults.timeout, defaults.priority) == (30.0, 0)
    assert len(defaults.request_id) == 32  # a fresh uuid4 hex


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"timeout": 60_000_001}, "at most 60000000"),
        ({"timeout": 2.5}, "timeout must be a whole number"),
        ({"timeout": "5"}, "timeout must be a whole number"),
        ({"timeout": -1}, "timeout must be a whole number"),
        ({"priority": -1}, "priority must be a whole number"),
        ({"priority": 1.0}, "priority must be a whole number"),
        ({"priority": True}, "priority must be a whole number"),
        ({"binary_data_output": "yes"}, "binary_data_output must be true or false"),
        ({"sequence_id": 3}, "sequences"),
    ],
)
def test_bad_parameters_are_400s(parameters: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInferRequest, match=message):
        _options(parameters)


SPECS = [TensorSpec("label", "BYTES", (1,)), TensorSpec("probabilities", "FP64", (-1,))]


def test_outputs_default_to_all_and_binary_follows_the_request_then_the_output() -> None:
    assert wanted_outputs(_request().outputs, SPECS, True) == [
        WantedOutput("label", True),
        WantedOutput("probabilities", True),
    ]
    request = _request(
        outputs=[{"name": "probabilities"}, {"name": "label", "parameters": {"binary_data": True}}]
    )
    assert wanted_outputs(request.outputs, SPECS, False) == [
        WantedOutput("probabilities", False),
        WantedOutput("label", True),
    ]


@pytest.mark.parametrize(
    ("outputs", "message"),
    [
        ([{"name": "score"}], "unknown output 'score'; the outputs are: label, probabilities"),
        ([{"name": "label"}, {"name": "label"}], "requested twice"),
        ([{"name": "label", "parameters": {"classification": 2}}], "classification"),
        ([{"name": "label", "parameters": {"binary_data": 1}}], "binary_data must be"),
    ],
)
def test_bad_outputs_are_400s(outputs: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(InvalidInferRequest, match=message):
        wanted_outputs(_request(outputs=outputs).outputs, SPECS, False)


OUTPUTS = [
    Tensor("label", "BYTES", (1,), ["setosa"]),
    Tensor("probabilities", "FP64", (2,), [0.75, 0.25]),
]


def _render(wanted: list[WantedOutput], batched: bool = False, outputs: Any = None) -> Any:
    return render_response(
        model_name="m",
        model_version="2",
        request_id="r",
        outputs=OUTPUTS if outputs is None else outputs,
        wanted=wanted,
        batched=batched,
    )


def test_a_json_response() -> None:
    response = _render([WantedOutput("probabilities", False), WantedOutput("label", False)])
    assert response.media_type == "application/json"
    assert HEADER_LENGTH.lower() not in response.headers
    assert json.loads(response.body) == {
        "model_name": "m",
        "model_version": "2",
        "id": "r",
        "outputs": [
            {"name": "probabilities", "datatype": "FP64", "shape": [2], "data": [0.75, 0.25]},
            {"name": "label", "datatype": "BYTES", "shape": [1], "data": ["setosa"]},
        ],
    }


def test_a_binary_response_carries_the_header_length_and_sizes() -> None:
    response = _render(
        [WantedOutput("label", True), WantedOutput("probabilities", False)], batched=True
    )
    assert response.media_type == "application/octet-stream"
    length = int(response.headers[HEADER_LENGTH])
    header, rest = json.loads(response.body[:length]), response.body[length:]
    label, probabilities = header["outputs"]
    assert label == {
        "name": "label",
        "datatype": "BYTES",
        "shape": [1, 1],
        "parameters": {"binary_data_size": 10},
    }
    assert probabilities["shape"] == [1, 2]
    assert probabilities["data"] == [0.75, 0.25]
    assert rest == struct.pack("<I", 6) + b"setosa"


def test_outputs_json_cannot_carry_ask_for_binary() -> None:
    with pytest.raises(InvalidInferRequest, match="request it as binary data"):
        _render([WantedOutput("x", False)], outputs=[Tensor("x", "FP64", (1,), [float("nan")])])
    with pytest.raises(InvalidInferRequest, match="not UTF-8 text"):
        _render([WantedOutput("x", False)], outputs=[Tensor("x", "BYTES", (1,), [b"\xff"])])
    binary = _render([WantedOutput("x", True)], outputs=[Tensor("x", "BYTES", (1,), [b"\xff"])])
    assert binary.body.endswith(b"\x01\x00\x00\x00\xff")


def test_the_request_payload_is_the_serialized_request_message() -> None:
    mapping = mapping_for(model_b_pb2.ModelBRequest.DESCRIPTOR)
    features = Tensor("features", "FP32", (1, 4), [5.0, 3.5, 1.25, 0.5])
    payload, batched = request_payload(mapping, model_b_pb2.ModelBRequest, [features], "b")
    assert batched is True
    assert list(model_b_pb2.ModelBRequest.FromString(payload).features) == [5.0, 3.5, 1.25, 0.5]
    with pytest.raises(InvalidInferRequest, match="unknown input 'x'; model 'b' has inputs"):
        request_payload(mapping, model_b_pb2.ModelBRequest, [Tensor("x", "FP64", (1,), [1])], "b")
