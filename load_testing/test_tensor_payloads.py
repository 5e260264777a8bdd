"""The tensors scenario's request bodies, gRPC framing and answer checks (no stack needed)."""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import pytest
from tritonclient.grpc import service_pb2

from load_testing import tensor_payloads as tp

TENSORS = tp.Tensors.sample()
LENGTH = struct.Struct("<I")


def test_the_sample_is_the_issues_payload_and_repeatable() -> None:
    assert len(TENSORS.image) == 224 * 224 * 3 == tp.IMAGE_BYTES
    assert len(TENSORS.embedding) == 768 * 4
    assert TENSORS.size == 153_600
    assert tp.Tensors.sample() == TENSORS
    assert tp.Tensors.sample(seed=1) != TENSORS
    values = TENSORS.embedding_values()
    assert len(values) == 768
    assert all(-1.0 <= v < 1.0 for v in values)


def test_rest_binary_is_a_json_header_then_the_tensors_bytes() -> None:
    body = tp.rest_binary(TENSORS)
    assert body.content_type == "application/octet-stream"
    length = int(body.headers["Inference-Header-Content-Length"])
    header = json.loads(body.body[:length])
    assert header["parameters"] == {"binary_data_output": True}
    image, embedding = header["inputs"]
    assert (image["name"], image["datatype"], image["shape"]) == ("image", "BYTES", [1, 1])
    assert (embedding["name"], embedding["datatype"], embedding["shape"]) == (
        "embedding", "FP32", [1, 768],
    )  # fmt: skip
    assert image["parameters"]["binary_data_size"] == 4 + 150_528
    assert embedding["parameters"]["binary_data_size"] == 3_072
    assert body.body[length:] == LENGTH.pack(150_528) + TENSORS.image + TENSORS.embedding


@pytest.mark.parametrize("total", [5_000, 9_999, 10_000, 100_003, 1_048_576, 1_048_577])
def test_a_sized_rest_binary_body_has_exactly_that_length(total: int) -> None:
    body, tensors = tp.sized_rest_binary(total)
    assert len(body.body) == total
    assert body.body.endswith(tensors.image + tensors.embedding)


def test_rest_json_sends_the_image_as_base64_text_and_the_embedding_exactly() -> None:
    body = tp.rest_json(TENSORS)
    assert body.content_type == "application/json"
    assert body.headers == {}
    image, embedding = json.loads(body.body)["inputs"]
    assert base64.b64decode(image["data"][0]) == TENSORS.image
    assert struct.pack("<768f", *embedding["data"]) == TENSORS.embedding
    assert embedding["shape"] == [1, 768]


def test_the_reference_gets_the_bare_bytes() -> None:
    body = tp.reference_body(TENSORS)
    assert body.body == TENSORS.image + TENSORS.embedding
    assert body.content_type == "application/octet-stream"


def test_the_grpc_request_carries_raw_contents_and_frames_as_grpc() -> None:
    request = tp.grpc_request("m", TENSORS)
    assert request.model_name == "m"
    assert [(i.name, i.datatype, list(i.shape)) for i in request.inputs] == [
        ("image", "BYTES", [1, 1]),
        ("embedding", "FP32", [1, 768]),
    ]
    assert list(request.raw_input_contents) == [
        LENGTH.pack(150_528) + TENSORS.image,
        TENSORS.embedding,
    ]
    message = request.SerializeToString()
    frame = tp.grpc_frame(message)
    assert frame[:5] == b"\x00" + len(message).to_bytes(4, "big")
    assert tp.grpc_unframe(frame) == message
    assert service_pb2.ModelInferRequest.FromString(tp.grpc_unframe(frame)) == request


@pytest.mark.parametrize(
    "frame",
    [b"\x00\x00\x00", b"\x01\x00\x00\x00\x01x", b"\x00\x00\x00\x00\x02x", b"\x00\x00\x00\x00\x00x"],
)
def test_unframing_refuses_anything_but_one_plain_frame(frame: bytes) -> None:
    with pytest.raises(ValueError, match="frame"):
        tp.grpc_unframe(frame)


@pytest.mark.parametrize("total", [5_000, 16_390, 2_097_160, 1_048_576, 1_048_577])
def test_a_sized_grpc_request_serializes_to_exactly_that_length(total: int) -> None:
    request = tp.sized_grpc_request("m", total)
    assert len(request.SerializeToString()) == total
    asking = tp.sized_grpc_request("m", total, outputs=["embedding"])
    assert len(asking.SerializeToString()) == total
    assert [o.name for o in asking.outputs] == ["embedding"]


def test_model_a_forms() -> None:
    inputs = json.loads(tp.model_a_json().body)["inputs"]
    assert inputs == [{"name": "data", "datatype": "BYTES", "shape": [1], "data": ["example"]}]
    request = tp.model_a_grpc("a")
    assert request.inputs[0].name == "data"
    assert list(request.raw_input_contents) == [LENGTH.pack(7) + b"example"]


# Answers as the protocol describes them, built by hand.


def _binary_answer(image: bytes, embedding: bytes) -> tuple[bytes, str]:
    buffers = [LENGTH.pack(len(image)) + image, embedding]
    header = json.dumps({
        "model_name": "m", "model_version": "1", "id": "x",
        "outputs": [
            {"name": "image", "datatype": "BYTES", "shape": [1, 1],
             "parameters": {"binary_data_size": len(buffers[0])}},
            {"name": "embedding", "datatype": "FP32", "shape": [1, 768],
             "parameters": {"binary_data_size": len(buffers[1])}},
        ],
    }).encode()  # fmt: skip
    return header + b"".join(buffers), str(len(header))


def test_a_binary_answer_with_the_tensors_passes() -> None:
    body, length = _binary_answer(TENSORS.image, TENSORS.embedding)
    assert tp.check_rest_binary(body, length, TENSORS) is None


def test_a_binary_answer_that_changed_a_byte_or_lost_its_header_fails() -> None:
    changed = bytes([TENSORS.image[0] ^ 1]) + TENSORS.image[1:]
    body, length = _binary_answer(changed, TENSORS.embedding)
    assert tp.check_rest_binary(body, length, TENSORS) == "the image came back changed"
    body, length = _binary_answer(TENSORS.image, TENSORS.embedding[:-4] + b"\x00" * 4)
    assert tp.check_rest_binary(body, length, TENSORS) == "the embedding came back changed"
    assert "Inference-Header-Content-Length" in (tp.check_rest_binary(body, None, TENSORS) or "")
    assert "belong to no output" in (tp.check_rest_binary(body + b"x", length, TENSORS) or "")


def _json_answer(image_text: str, values: list[float], shape: list[int] | None = None) -> bytes:
    return json.dumps({"outputs": [
        {"name": "image", "datatype": "BYTES", "shape": [1, 1], "data": [image_text]},
        {"name": "embedding", "datatype": "FP32", "shape": shape or [1, 768], "data": values},
    ]}).encode()  # fmt: skip


def test_a_json_answer_with_the_tensors_passes_and_a_changed_one_fails() -> None:
    text = base64.b64encode(TENSORS.image).decode()
    values = TENSORS.embedding_values()
    assert tp.check_rest_json(_json_answer(text, values), TENSORS) is None
    other = [*values[:-1], values[-1] + 0.5]
    assert tp.check_rest_json(_json_answer(text, other), TENSORS) == (
        "the embedding came back changed"
    )
    assert tp.check_rest_json(_json_answer(text[1:], values), TENSORS) == (
        "the image came back changed"
    )
    assert "[1, 768]" in (tp.check_rest_json(_json_answer(text, values, [768]), TENSORS) or "")
    assert "not JSON" in (tp.check_rest_json(b"<html>", TENSORS) or "")


def _grpc_answer(raw: bool, image: bytes = TENSORS.image) -> service_pb2.ModelInferResponse:
    response = service_pb2.ModelInferResponse(model_name="m")
    image_out = response.outputs.add(name="image", datatype="BYTES", shape=[1, 1])
    embedding_out = response.outputs.add(name="embedding", datatype="FP32", shape=[1, 768])
    if raw:
        response.raw_output_contents.extend([LENGTH.pack(len(image)) + image, TENSORS.embedding])
    else:
        image_out.contents.bytes_contents.append(image)
        embedding_out.contents.fp32_contents.extend(TENSORS.embedding_values())
    return response


@pytest.mark.parametrize("raw", [True, False])
def test_a_grpc_answer_in_raw_or_typed_contents_passes(raw: bool) -> None:
    assert tp.check_grpc(_grpc_answer(raw), TENSORS) is None
    changed = _grpc_answer(raw, TENSORS.image[:-1])
    assert tp.check_grpc(changed, TENSORS) == "the image came back changed"


def test_a_grpc_answer_missing_an_output_or_contents_fails() -> None:
    response = _grpc_answer(True)
    del response.raw_output_contents[1]
    assert "raw output contents" in (tp.check_grpc(response, TENSORS) or "")
    response = service_pb2.ModelInferResponse()
    response.outputs.add(name="image", datatype="BYTES", shape=[1, 1])
    assert tp.check_grpc(response, TENSORS) == "output 'embedding' is missing"


def test_model_a_answers() -> None:
    reply = {"outputs": [{"name": "reply", "datatype": "BYTES", "shape": [1],
                          "data": ["Processed message: example"]}]}  # fmt: skip
    assert tp.check_model_a_json(json.dumps(reply).encode()) is None
    assert "expected" in (tp.check_model_a_json(json.dumps(reply).encode(), "other") or "")
    response = service_pb2.ModelInferResponse()
    response.outputs.add(name="reply", datatype="BYTES", shape=[1])
    text = b"Processed message: example"
    response.raw_output_contents.append(LENGTH.pack(len(text)) + text)
    assert tp.check_model_a_grpc(response) is None
    assert tp.check_model_a_grpc(response, "other") is not None


@pytest.mark.parametrize(
    ("status", "media", "body", "problem"),
    [
        (413, "application/json", b'{"error": "the body is larger than 1024 bytes"}', None),
        (200, "application/json", b'{"error": "x"}', "HTTP 200, expected 413"),
        (413, "text/plain", b"too large", "not JSON"),
        (413, "application/json", b"[1]", "without an error message"),
        (413, "application/json", b"{oops", "not JSON"),
    ],
)
def test_a_refusal_must_be_the_status_with_a_json_error(
    status: int, media: str, body: bytes, problem: Any
) -> None:
    found = tp.check_refusal(status, media, body, 413)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found
