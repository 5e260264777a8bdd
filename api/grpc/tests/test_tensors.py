"""ModelInferRequest tensors in and ModelInferResponse tensors out, datatype by datatype."""

import struct

import pytest

from api.grpc.tensors import CONTENTS_FIELDS, infer_response, parameters_of, read_inputs
from api.oip.datatypes import DATATYPES
from api.oip.exceptions import InvalidInferRequest
from api.oip.execute import Outcome
from api.oip.infer import WantedOutput
from api.oip.tensors import Tensor
from proto.oip import grpc_service_pb2 as pb

Input = pb.ModelInferRequest.InferInputTensor


def test_every_datatype_but_fp16_has_a_contents_field_of_the_protocol() -> None:
    assert set(CONTENTS_FIELDS) == DATATYPES - {"FP16"}
    fields = set(pb.InferTensorContents.DESCRIPTOR.fields_by_name)
    assert set(CONTENTS_FIELDS.values()) == fields


def test_contents_of_each_family_are_read() -> None:
    def given(name: str, datatype: str, shape: list[int], **contents: list[object]) -> Input:
        return Input(name=name, datatype=datatype, shape=shape, contents=contents)

    request = pb.ModelInferRequest(
        inputs=[
            given("b", "BOOL", [2], bool_contents=[True, False]),
            given("u", "UINT16", [1], uint_contents=[65535]),
            given("q", "UINT64", [1], uint64_contents=[2**64 - 1]),
            given("s", "BYTES", [1, 1], bytes_contents=[b"x"]),
        ]
    )
    tensors, raw = read_inputs(request)
    assert raw is False
    assert tensors == [
        Tensor("b", "BOOL", (2,), [True, False]),
        Tensor("u", "UINT16", (1,), [65535]),
        Tensor("q", "UINT64", (1,), [2**64 - 1]),
        Tensor("s", "BYTES", (1, 1), [b"x"]),
    ]


def test_raw_contents_are_read_in_the_order_of_the_inputs() -> None:
    request = pb.ModelInferRequest(
        inputs=[
            Input(name="h", datatype="FP16", shape=[2]),
            Input(name="p", datatype="UINT8", shape=[2, 2]),
        ],
        raw_input_contents=[struct.pack("<2e", 1.5, -2.0), bytes([0, 1, 254, 255])],
    )
    tensors, raw = read_inputs(request)
    assert raw is True
    assert tensors == [
        Tensor("h", "FP16", (2,), [1.5, -2.0]),
        Tensor("p", "UINT8", (2, 2), [0, 1, 254, 255]),
    ]


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (pb.ModelInferRequest(inputs=[Input(name="x", datatype="FP32", shape=[-1])]), "negative"),
        (
            pb.ModelInferRequest(
                inputs=[Input(name="x", datatype="FP32", shape=[2])],
                raw_input_contents=[b"\0" * 6],
            ),
            "not whole FP32 elements",
        ),
        (
            pb.ModelInferRequest(
                inputs=[
                    Input(name="x", datatype="UINT8", shape=[1], contents={"uint_contents": [256]})
                ]
            ),
            "out of the range of UINT8",
        ),
    ],
)  # fmt: skip
def test_inputs_that_do_not_add_up_are_refused(
    request_: pb.ModelInferRequest, message: str
) -> None:
    with pytest.raises(InvalidInferRequest, match=message):
        read_inputs(request_)


def test_parameters_become_plain_values() -> None:
    request = pb.ModelInferRequest()
    request.parameters["a"].bool_param = True
    request.parameters["b"].int64_param = -3
    request.parameters["c"].string_param = "s"
    request.parameters["d"].double_param = 0.5
    request.parameters["e"].uint64_param = 2**63
    request.parameters["f"].CopyFrom(pb.InferParameter())
    assert parameters_of(request.parameters) == {
        "a": True, "b": -3, "c": "s", "d": 0.5, "e": 2**63, "f": None
    }  # fmt: skip


OUTCOME = Outcome(
    [Tensor("label", "BYTES", (1,), ["setosa"]), Tensor("n", "INT32", (2,), [1, -2])], True
)
WANTED = [WantedOutput("n", False), WantedOutput("label", False), WantedOutput("gone", False)]


def test_outputs_in_contents_in_the_order_asked() -> None:
    response = infer_response(
        model_name="m", model_version="1", request_id="r", outcome=OUTCOME, wanted=WANTED, raw=False
    )
    assert [(o.name, list(o.shape)) for o in response.outputs] == [("n", [1, 2]), ("label", [1, 1])]
    assert list(response.outputs[0].contents.int_contents) == [1, -2]
    assert list(response.outputs[1].contents.bytes_contents) == [b"setosa"]
    assert not response.raw_output_contents


def test_outputs_raw_when_the_inputs_were_or_a_datatype_has_no_field() -> None:
    response = infer_response(
        model_name="m", model_version="1", request_id="r", outcome=OUTCOME, wanted=WANTED, raw=True
    )
    assert list(response.raw_output_contents) == [
        struct.pack("<2i", 1, -2),
        struct.pack("<I", 6) + b"setosa",
    ]
    assert not response.outputs[0].HasField("contents")
    half = Outcome([Tensor("h", "FP16", (1,), [0.5]), Tensor("n", "INT32", (1,), [3])], False)
    wanted = [WantedOutput("h", False), WantedOutput("n", False)]
    mixed = infer_response(
        model_name="m", model_version="1", request_id="r", outcome=half, wanted=wanted, raw=False
    )
    assert list(mixed.raw_output_contents) == [struct.pack("<e", 0.5), struct.pack("<i", 3)]
