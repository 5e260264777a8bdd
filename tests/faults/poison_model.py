"""A test-only model that kills its own process on a marked input (a poison task).

Request ``{"data": "poison"}`` and the worker running it dies by SIGKILL, as a worker would
on a segfault or an out-of-memory kill; any other ``data`` is answered like model_a
(``Processed message: <data>``). With ``POISON_KILLS=0`` it answers the poison too (the
model, fixed). Run with ``python -m tests.faults.poison_model``.
"""

import os
import signal

from proto import model_a_pb2
from worker_base import MessageDescriptor, Model, run_model

POISON = "poison"


class PoisonModel(Model):
    """Dies on ``POISON``, answers anything else."""

    name = "poison"

    def __init__(self) -> None:
        self._kills = os.environ.get("POISON_KILLS", "1") != "0"

    async def process_request(self, body: bytes) -> model_a_pb2.ModelAResponse:
        request = model_a_pb2.ModelARequest()
        request.ParseFromString(body)
        if request.data == POISON and self._kills:
            os.kill(os.getpid(), signal.SIGKILL)
        return model_a_pb2.ModelAResponse(reply=f"Processed message: {request.data}")

    def get_request_format(self) -> MessageDescriptor:
        return model_a_pb2.ModelARequest.DESCRIPTOR

    def get_response_format(self) -> MessageDescriptor:
        return model_a_pb2.ModelAResponse.DESCRIPTOR


if __name__ == "__main__":
    run_model(PoisonModel())
