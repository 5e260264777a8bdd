"""ModelA answers the seed's reply and describes its messages."""

import pytest

from models.model_a import ModelA
from proto import model_a_pb2


@pytest.mark.asyncio
async def test_reply_is_the_seeds() -> None:
    body = model_a_pb2.ModelARequest(data="example").SerializeToString()
    response = await ModelA().process_request(body)
    assert response == model_a_pb2.ModelAResponse(reply="Processed message: example")


def test_formats_and_example() -> None:
    model = ModelA()
    assert model.get_request_format().full_name == "conveyor.v1.ModelARequest"
    assert model.get_response_format().full_name == "conveyor.v1.ModelAResponse"
    assert model.example_request() == {"data": "example"}
