"""An identity model over big tensors: it answers the image and the embedding it was sent.

Why identity, rather than the small answer most image models give: the benchmark measures what
carrying big tensors costs, and an identity model carries them both ways, through every output
encoding too (binary, JSON, gRPC raw contents). The reference transport then carries exactly
the same bytes (its worker echoes an opaque body), so "the same bytes" needs no interpretation.
Its own work is a parse and a copy: what is measured is the transport.

Why ``bytes`` for the image, not the protocol's UINT8 tensor (a ``repeated uint32`` field, which
accepts UINT8 input): the gateway converts a repeated field element by element in Python, some
50 ms of CPU for 150,528 pixels against under 1 ms for one ``bytes`` element (docs/performance.md,
"Big tensors"). A client sends the image as a BYTES tensor of one element.
"""

from typing import Any

from load_testing.tensor_model import tensor_model_pb2
from worker_base import MessageDescriptor, Model


class TensorModel(Model):
    """Answers its request's ``image`` and ``embedding`` unchanged."""

    name = "bench_tensor"

    async def process_request(self, body: bytes) -> tensor_model_pb2.TensorResponse:
        """The request's tensors, unchanged."""
        request = tensor_model_pb2.TensorRequest.FromString(body)
        return tensor_model_pb2.TensorResponse(image=request.image, embedding=request.embedding)

    def get_request_format(self) -> MessageDescriptor:
        """The TensorRequest descriptor."""
        return tensor_model_pb2.TensorRequest.DESCRIPTOR

    def get_response_format(self) -> MessageDescriptor:
        """The TensorResponse descriptor."""
        return tensor_model_pb2.TensorResponse.DESCRIPTOR

    def example_request(self) -> dict[str, Any]:
        """A tiny image (base64, the JSON mapping of bytes) and a 4-float embedding."""
        return {"image": "AAECAwQF", "embedding": [0.0, 0.25, 0.5, 1.0]}
