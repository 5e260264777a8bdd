"""The model contract's streaming half: ``process_stream`` and ``process_request`` default to
each other, ``combine`` joins pieces, a class implementing neither cannot be instantiated, and
the features a worker announces follow what the class implements."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor_pb2 import FieldDescriptorProto
from google.protobuf.message import Message

from conveyor.errors import SchemaError
from conveyor.protocol import STREAM_FEATURE, TASK_BATCH_FEATURE
from proto import model_a_pb2, model_b_pb2, task_pb2
from worker_base import MessageDescriptor, Model, Settings, Worker
from worker_base.contracts import check_text_generation, text_generation_problems
from worker_base.registration import registration_of


class Formats:
    """Request ``ModelARequest``, response ``ModelAResponse``."""

    def get_request_format(self) -> MessageDescriptor:
        return model_a_pb2.ModelARequest.DESCRIPTOR

    def get_response_format(self) -> MessageDescriptor:
        return model_a_pb2.ModelAResponse.DESCRIPTOR


class OnePiece(Formats, Model):
    name = "one_piece"

    async def process_request(self, body: bytes) -> Message:
        return model_a_pb2.ModelAResponse(
            reply="whole:" + model_a_pb2.ModelARequest.FromString(body).data
        )


class Words(Formats, Model):
    """Streams each character of ``data`` as a piece."""

    name = "words"

    async def process_stream(self, body: bytes) -> AsyncIterator[Message]:
        for char in model_a_pb2.ModelARequest.FromString(body).data:
            yield model_a_pb2.ModelAResponse(reply=char)


def _body(data: str) -> bytes:
    return model_a_pb2.ModelARequest(data=data).SerializeToString()


@pytest.mark.asyncio
async def test_the_default_stream_is_the_response_once() -> None:
    model = OnePiece()
    pieces = [piece async for piece in model.process_stream(_body("x"))]
    assert pieces == [model_a_pb2.ModelAResponse(reply="whole:x")]
    assert not OnePiece.implements_streaming()


@pytest.mark.asyncio
async def test_a_streaming_model_answers_a_request_with_its_pieces_combined() -> None:
    model = Words()
    assert Words.implements_streaming()
    assert await model.process_request(_body("abc")) == model_a_pb2.ModelAResponse(reply="abc")
    assert await model.process_request(_body("")) == model_a_pb2.ModelAResponse()


def test_a_class_implementing_neither_method_cannot_be_instantiated() -> None:
    class Neither(Formats, Model):
        name = "neither"

    with pytest.raises(TypeError, match="neither process_request nor process_stream"):
        Neither()


def test_abstract_formats_are_still_required() -> None:
    class NoFormats(Model):
        name = "no_formats"

        async def process_request(self, body: bytes) -> Message:
            raise NotImplementedError

    with pytest.raises(TypeError, match="abstract"):
        NoFormats()  # type: ignore[abstract]


class Results(Model):
    """A response type with every kind of field: ``TaskResult``."""

    name = "results"

    async def process_request(self, body: bytes) -> Message:
        raise NotImplementedError

    def get_request_format(self) -> MessageDescriptor:
        return model_a_pb2.ModelARequest.DESCRIPTOR

    def get_response_format(self) -> MessageDescriptor:
        return task_pb2.TaskResult.DESCRIPTOR


def test_combine_concatenates_text_extends_lists_merges_messages_takes_last_scalars() -> None:
    error = task_pb2.TaskError
    pieces = [
        task_pb2.TaskResult(task_id="ab", attempt=2, failed_attempts=[error(message="1")]),
        task_pb2.TaskResult(model="m", attempt=3, redelivered=True),
        task_pb2.TaskResult(task_id="cd", failed_attempts=[error(message="2")]),
    ]
    combined = Results().combine(pieces)
    assert isinstance(combined, task_pb2.TaskResult)
    assert combined.task_id == "abcd"
    assert combined.model == "m"
    assert combined.attempt == 3  # the last value set (0 is proto3's unset)
    assert combined.redelivered
    assert [e.message for e in combined.failed_attempts] == ["1", "2"]


def test_combine_concatenates_bytes_and_merges_sub_messages() -> None:
    model = Results()
    combined = model.combine(
        [task_pb2.TaskResult(response=b"ab"), task_pb2.TaskResult(response=b"c")]
    )
    assert isinstance(combined, task_pb2.TaskResult)
    assert combined.response == b"abc"
    merged = model.combine(
        [
            task_pb2.TaskResult(
                error=task_pb2.TaskError(code=task_pb2.TaskError.MODEL_ERROR, message="x")
            ),
            task_pb2.TaskResult(error=task_pb2.TaskError(field="f")),
        ]
    )
    assert isinstance(merged, task_pb2.TaskResult)
    assert merged.error == task_pb2.TaskError(
        code=task_pb2.TaskError.MODEL_ERROR, message="x", field="f"
    )


def test_combine_of_one_piece_is_that_piece_and_of_none_the_empty_response() -> None:
    piece = task_pb2.TaskResult(task_id="t", response=b"r", attempt=1)
    assert Results().combine([piece]) == piece
    assert Results().combine([]) == task_pb2.TaskResult()
    assert OnePiece().combine([]) == model_a_pb2.ModelAResponse()


def test_combine_extends_maps() -> None:
    class Labels(Model):
        name = "labels"

        async def process_request(self, body: bytes) -> Message:
            raise NotImplementedError

        def get_request_format(self) -> MessageDescriptor:
            return model_b_pb2.ModelBRequest.DESCRIPTOR

        def get_response_format(self) -> MessageDescriptor:
            return model_b_pb2.ModelBResponse.DESCRIPTOR

    combined = Labels().combine(
        [
            model_b_pb2.ModelBResponse(label="a", probabilities={"x": 0.5}),
            model_b_pb2.ModelBResponse(label="b", probabilities={"y": 0.25}),
        ]
    )
    assert isinstance(combined, model_b_pb2.ModelBResponse)
    assert combined.label == "ab"
    assert dict(combined.probabilities) == {"x": 0.5, "y": 0.25}


def test_combine_refuses_a_piece_of_another_type() -> None:
    with pytest.raises(TypeError, match=r"cannot combine a conveyor\.v1\.TaskResult"):
        OnePiece().combine([task_pb2.TaskResult(task_id="t")])


# Text generation and the announced features.


def test_text_generation_contract_problems_are_named() -> None:
    assert text_generation_problems(
        model_a_pb2.ModelARequest.DESCRIPTOR, model_a_pb2.ModelAResponse.DESCRIPTOR
    ) == [
        "conveyor.v1.ModelARequest has no field 'prompt' (a string)",
        "conveyor.v1.ModelAResponse has no field 'text' (a string)",
    ]
    # TaskResult has no prompt either; TaskError's "field" is no text.
    with pytest.raises(SchemaError, match="text-generation contract"):
        check_text_generation(task_pb2.Task.DESCRIPTOR, task_pb2.TaskError.DESCRIPTOR)


def _message(name: str, **fields: tuple[int, bool]) -> MessageDescriptor:
    """A message type ``name`` with ``fields`` (name: (type, repeated)), in a pool of its own."""
    file = descriptor_pb2.FileDescriptorProto(name=f"{name}.proto", package="t", syntax="proto3")
    message = file.message_type.add(name=name)
    for number, (field, (kind, repeated)) in enumerate(fields.items(), start=1):
        label = (
            FieldDescriptorProto.LABEL_REPEATED if repeated else FieldDescriptorProto.LABEL_OPTIONAL
        )
        message.field.add(name=field, number=number, type=kind, label=label)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return pool.FindMessageTypeByName(f"t.{name}")


def test_wrongly_typed_fields_are_problems_and_right_ones_pass() -> None:
    F = FieldDescriptorProto
    good = _message(
        "Good",
        prompt=(F.TYPE_STRING, False),
        max_tokens=(F.TYPE_UINT32, False),
        seed=(F.TYPE_INT64, False),
        temperature=(F.TYPE_DOUBLE, False),
    )
    text = _message("Text", text=(F.TYPE_STRING, False))
    assert text_generation_problems(good, text) == []
    assert text_generation_problems(_message("Short", prompt=(F.TYPE_STRING, False)), text) == []
    bad = _message(
        "Bad",
        prompt=(F.TYPE_BYTES, False),
        max_tokens=(F.TYPE_STRING, False),
        seed=(F.TYPE_DOUBLE, False),
        temperature=(F.TYPE_INT32, False),
    )
    many = _message("Many", text=(F.TYPE_STRING, True))
    assert text_generation_problems(bad, many) == [
        "t.Bad.prompt must be a string, not repeated",
        "t.Bad.max_tokens must be an integer, not repeated",
        "t.Bad.seed must be an integer, not repeated",
        "t.Bad.temperature must be a float or double, not repeated",
        "t.Many.text must be a string, not repeated",
    ]


def test_a_worker_refuses_a_text_generation_model_whose_messages_do_not_follow_it() -> None:
    class Pretends(OnePiece):
        text_generation = True

    with pytest.raises(SchemaError, match="prompt"):
        Worker(Pretends(), Settings(model_name="pretends"))


def test_features_follow_what_the_class_implements() -> None:
    assert registration_of(OnePiece(), "1", "q").features == [TASK_BATCH_FEATURE]
    assert registration_of(Words(), "1", "q").features == [TASK_BATCH_FEATURE, STREAM_FEATURE]


def test_concurrency_defaults_to_the_models() -> None:
    class Many(Words):
        concurrency = 32

    assert Worker(Words(), Settings(model_name="w")).concurrency == 4
    assert Worker(Many(), Settings(model_name="w")).concurrency == 32
    assert Worker(Many(), Settings(model_name="w", worker_concurrency=2)).concurrency == 2
