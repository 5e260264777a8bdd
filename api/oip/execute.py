"""Running a model version on input tensors: the part of an inference both transports share.

The REST route (``api.oip.routes``) and the gRPC servicer (``api.grpc.inference``) each read
their request into tensors and options, call ``execute``, and render the output tensors it
returns in their own form.
"""

import time
from collections.abc import Sequence
from dataclasses import dataclass

from google.protobuf.message import DecodeError, Message

from api.exceptions import InvalidResult, ModelUnavailable, ResultTimeout, TaskFailed
from api.oip.binary import raw_problem
from api.oip.infer import InferOptions, request_payload
from api.oip.ports import Dispatcher, ModelView
from api.oip.tensors import Tensor, mapping_for
from proto import task_pb2


@dataclass(frozen=True)
class Outcome:
    """A model's answer as tensors; ``batched`` when the inputs had a batch dimension of 1,
    which the outputs then get too."""

    outputs: list[Tensor]
    batched: bool


async def execute(
    info: ModelView,
    dispatcher: Dispatcher,
    inputs: Sequence[Tensor],
    options: InferOptions,
    *,
    arrival: float,
    request_id: str,
) -> Outcome:
    """Build the request message from ``inputs``, run it on ``info``'s workers and return the
    response message's tensors.

    The timeout counts from ``arrival`` (``time.monotonic()``); ``request_id`` goes with the
    task into the workers' logs. Raise ``InvalidInferRequest`` / ``UnmappableField`` for
    inputs that do not fit, ``ModelUnavailable`` without a live worker, ``ResultTimeout``,
    ``TaskFailed`` for the worker's error, ``InvalidResult`` for an unreadable answer (a
    declared tensor whose bytes do not fill its shape included), and what ``Dispatcher.run``
    raises.
    """
    payload, batched = request_payload(
        mapping_for(info.request_class.DESCRIPTOR), info.request_class, inputs, info.name
    )
    remaining = seconds_left(info, options.timeout, arrival)
    result = await dispatcher.run(
        info, payload, seconds=remaining, priority=options.priority, request_id=request_id
    )
    return Outcome(output_tensors(response_message(result, info), info), batched)


def output_tensors(message: Message, info: ModelView) -> list[Tensor]:
    """The tensors of ``info``'s response ``message``; raise ``InvalidResult`` for a declared
    tensor whose bytes do not fill its shape."""
    outputs = mapping_for(info.response_class.DESCRIPTOR).from_message(message)
    for tensor in outputs:
        if tensor.raw is None:
            continue
        problem = raw_problem(tensor.datatype, tensor.shape, tensor.raw)
        if problem is not None:
            raise InvalidResult(
                f"the worker returned output {tensor.name!r} of shape {list(tensor.shape)} "
                f"with unfitting data: {problem}",
                model=info.name,
            )
    return outputs


def seconds_left(info: ModelView, timeout: float, arrival: float) -> float:
    """The seconds of ``timeout`` (counted from ``arrival``, ``time.monotonic()``) left for a
    task on ``info``; raise ``ModelUnavailable`` without a live worker, ``ResultTimeout`` when
    none are left."""
    if not info.alive:
        raise ModelUnavailable(no_worker(info), model=info.name)
    remaining = timeout - (time.monotonic() - arrival)
    if remaining <= 0:
        raise ResultTimeout(
            f"the request spent its {timeout:g} s timeout waiting in the gateway",
            model=info.name,
            task_id=None,
        )
    return remaining


def no_worker(info: ModelView) -> str:
    """The message of a model version without a live worker."""
    return f"model {info.name!r} version {info.version} has no live worker"


def response_message(result: task_pb2.TaskResult, info: ModelView) -> Message:
    """The response message in a task's result; raise ``TaskFailed`` for an error result and
    ``InvalidResult`` for one that does not parse."""
    if result.WhichOneof("outcome") != "response":
        error = result.error
        raise TaskFailed(
            error.message or "the task failed",
            code=task_pb2.TaskError.Code.Name(error.code),
            model=info.name,
            task_id=result.task_id,
            field=error.field or None,
        )
    message = info.response_class()
    try:
        message.ParseFromString(result.response)
    except DecodeError as e:
        raise InvalidResult(
            f"the worker returned an unreadable {info.response_class.DESCRIPTOR.full_name}",
            model=info.name,
        ) from e
    return message
