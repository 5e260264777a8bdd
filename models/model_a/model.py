"""ModelA answers ``{"data": x}`` with ``{"reply": "Processed message: x"}``."""

from typing import Any

from proto import model_a_pb2
from worker_base import MessageDescriptor, Model


class ModelA(Model):
    """The seed's example model."""

    name = "model_a"
    version = "1"

    async def process_request(self, body: bytes) -> model_a_pb2.ModelAResponse:
        """Echo the request's data with a prefix."""
        request = model_a_pb2.ModelARequest()
        request.ParseFromString(body)
        return model_a_pb2.ModelAResponse(reply=f"Processed message: {request.data}")

    def get_request_format(self) -> MessageDescriptor:
        """Return the ModelARequest descriptor."""
        return model_a_pb2.ModelARequest.DESCRIPTOR

    def get_response_format(self) -> MessageDescriptor:
        """Return the ModelAResponse descriptor."""
        return model_a_pb2.ModelAResponse.DESCRIPTOR

    def example_request(self) -> dict[str, Any]:
        """Return the seed's example request."""
        return {"data": "example"}
