"""The compiled schemas load and round-trip through the binary and JSON wire formats."""

from google.protobuf import json_format

from proto import model_a_pb2, task_pb2


def test_task_round_trips_through_binary() -> None:
    task = task_pb2.Task(task_id="abc", model="model_a", payload=b"\x01\x02", deadline_unix_ms=7)
    decoded = task_pb2.Task.FromString(task.SerializeToString())
    assert decoded == task
    assert decoded.payload == b"\x01\x02"


def test_model_a_request_round_trips_through_json() -> None:
    request = json_format.Parse('{"data": "example"}', model_a_pb2.ModelARequest())
    assert request.data == "example"
    assert json_format.MessageToDict(request) == {"data": "example"}
