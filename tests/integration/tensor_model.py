"""A test-only tensor model: declared tensors in and out (``affine.proto``), written against
the plain ``Model`` contract, so the gateway's tensor mapping is tested on its own.

``y`` is ``x`` (FP32 [n, 4]) times ``MATRIX`` (FP32 [n, 2]); ``brightness`` holds the sum of each
``image``'s bytes (UINT8 [m, 2, 2, 3] in, INT64 [m] out). Run with
``python -m tests.integration.tensor_model``.
"""

import struct

from tests.integration import affine_pb2
from worker_base import InvalidRequest, MessageDescriptor, Model, run_model

MATRIX = ((1.0, 0.0), (0.0, 1.0), (1.0, 1.0), (2.0, -1.0))
"""The 4 x 2 matrix each row of ``x`` is multiplied by."""

IMAGE_SIZE = 2 * 2 * 3


class TensorModel(Model):
    """``x`` times ``MATRIX``; the brightness of each image."""

    name = "affine"

    async def process_request(self, body: bytes) -> affine_pb2.AffineResponse:
        request = affine_pb2.AffineRequest.FromString(body)
        response = affine_pb2.AffineResponse()
        rows = request.x.shape[0] if request.x.shape else 0
        if len(request.x.raw) != rows * 16:
            raise InvalidRequest("x does not hold rows of four FP32 values", field="x")
        values = struct.unpack(f"<{rows * 4}f", request.x.raw)
        y = [
            sum(values[r * 4 + i] * MATRIX[i][j] for i in range(4))
            for r in range(rows)
            for j in range(2)
        ]
        response.y.shape.extend([rows, 2])
        response.y.raw = struct.pack(f"<{len(y)}f", *y)
        raw = request.image.raw
        sums = [sum(raw[k : k + IMAGE_SIZE]) for k in range(0, len(raw), IMAGE_SIZE)]
        response.brightness.shape.append(len(sums))
        response.brightness.raw = struct.pack(f"<{len(sums)}q", *sums)
        return response

    def get_request_format(self) -> MessageDescriptor:
        return affine_pb2.AffineRequest.DESCRIPTOR

    def get_response_format(self) -> MessageDescriptor:
        return affine_pb2.AffineResponse.DESCRIPTOR


if __name__ == "__main__":
    run_model(TensorModel())
