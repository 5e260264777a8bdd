"""A model of your own: reads a date written in words, with python-dateutil."""

from dateutil import parser
from worker_base import InvalidRequest, MessageDescriptor, Model

import my_model_pb2  # compiled from my_model.proto in the image's build


class MyModel(Model):
    name = "my_model"

    async def process_request(self, body: bytes) -> my_model_pb2.ParseResponse:
        request = my_model_pb2.ParseRequest.FromString(body)
        try:
            when = parser.parse(request.text)
        except (ValueError, OverflowError) as error:
            raise InvalidRequest(f"not a date: {error}", field="text") from error
        return my_model_pb2.ParseResponse(iso=when.isoformat(), weekday=when.strftime("%A"))

    def get_request_format(self) -> MessageDescriptor:
        return my_model_pb2.ParseRequest.DESCRIPTOR

    def get_response_format(self) -> MessageDescriptor:
        return my_model_pb2.ParseResponse.DESCRIPTOR
