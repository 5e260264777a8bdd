"""Turning a stored ``TaskResult`` into the JSON a client gets."""

from typing import Any

from api.catalog import ModelInfo
from api.codec import render_response
from api.exceptions import TaskFailed
from proto import task_pb2


def response_json(result: task_pb2.TaskResult, model: ModelInfo) -> dict[str, Any]:
    """Return the response message as JSON, or raise ``TaskFailed`` for an error result."""
    if result.WhichOneof("outcome") == "response":
        return render_response(result.response, model.response_class, model.name)
    error = result.error
    raise TaskFailed(
        error.message or "the task failed",
        code=task_pb2.TaskError.Code.Name(error.code),
        model=model.name,
        task_id=result.task_id,
        field=error.field or None,
    )
