"""The tensor model answers what it was sent, and describes its messages."""

import os

import pytest
from google.protobuf import json_format

from load_testing.tensor_model import TensorModel, tensor_model_pb2


@pytest.mark.asyncio
async def test_answers_the_image_and_embedding_unchanged() -> None:
    image = os.urandom(224 * 224 * 3)
    embedding = [i / 768 for i in range(768)]
    request = tensor_model_pb2.TensorRequest(image=image, embedding=embedding)
    response = await TensorModel().process_request(request.SerializeToString())
    assert response.image == image
    assert list(response.embedding) == list(request.embedding)


@pytest.mark.asyncio
async def test_an_empty_request_gets_an_empty_answer() -> None:
    response = await TensorModel().process_request(b"")
    assert response == tensor_model_pb2.TensorResponse()


def test_formats_and_example() -> None:
    model = TensorModel()
    assert model.get_request_format().full_name == "conveyor.bench.TensorRequest"
    assert model.get_response_format().full_name == "conveyor.bench.TensorResponse"
    request = json_format.ParseDict(model.example_request(), tensor_model_pb2.TensorRequest())
    assert len(request.image) == 6
