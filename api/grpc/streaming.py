"""``ModelStreamInfer``: requests in, several responses per request out, as Triton answers for
a decoupled model.

The call is bidirectional: the client sends ``ModelInferRequest``s for as long as it likes,
each read as ``ModelInfer`` reads its one request (inputs, ``parameters``, outputs), and run at
once as a synchronous streamed task (``Dispatcher.stream``), so several run side by side.
Every piece the model yields is one ``ModelStreamInferResponse`` whose ``infer_response``
carries the piece's output tensors, the request's ``id``, and the parameter
``triton_final_response`` false. As Triton does:

- the end of a request is an empty response (``id``, model and version, no outputs) with
  ``triton_final_response`` true, sent only when the request asked for it with the parameter
  ``triton_enable_empty_final_response`` (``tritonclient``'s ``enable_empty_final_response``);
- a request that fails, before or after its first piece, ends with one response whose
  ``error_message`` says why (its ``infer_response`` has the id, model, version and
  ``triton_final_response`` true); the call itself goes on.

A worker that dies mid-stream is hidden (``api.pieces.seamless``). Each request counts against
``MAX_INFLIGHT`` while it runs (past it, that request fails "overloaded"). The call ends once
the client has closed its side and every request has ended; a client that cancels the call
stops every request's generation.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Final

from google.protobuf.message import DecodeError, Message

from api.exceptions import InvalidResult, Overloaded
from api.grpc.edge import Call
from api.grpc.status import failure_of
from api.grpc.tensors import infer_response, parameters_of, read_inputs
from api.oip.execute import Outcome, output_tensors, response_message, seconds_left
from api.oip.infer import RequestOutput, infer_options, request_payload, wanted_outputs
from api.oip.ports import Catalog, Dispatcher, ModelView
from api.oip.tensors import mapping_for
from api.pieces import close, seamless, started
from conveyor.streams import Chunk
from proto.oip import grpc_service_pb2 as pb

__all__ = ["ENABLE_EMPTY_FINAL", "FINAL", "StreamInfer"]

FINAL: Final = "triton_final_response"
"""The response parameter that is true on a request's last response."""

ENABLE_EMPTY_FINAL: Final = "triton_enable_empty_final_response"
"""The request parameter asking for an empty last response once the request has ended."""

Write = Callable[[pb.ModelStreamInferResponse], Awaitable[None]]


class StreamInfer:
    """Serves the requests of one ``ModelStreamInfer`` call (see the module doc)."""

    def __init__(
        self,
        *,
        catalog: Catalog,
        dispatcher: Dispatcher,
        default_timeout: float,
        max_timeout: float,
        sheds: Callable[[], bool],
        count: Callable[[int], None],
    ) -> None:
        """``sheds`` tells whether the gateway is at ``MAX_INFLIGHT``; ``count(+1/-1)``
        counts a request in and out of it."""
        self._catalog = catalog
        self._dispatcher = dispatcher
        self._default_timeout = default_timeout
        self._max_timeout = max_timeout
        self._sheds = sheds
        self._count = count

    async def serve(
        self, requests: AsyncIterator[pb.ModelInferRequest], write: Write, call: Call
    ) -> None:
        """Run every request the client sends, writing their responses (one write at a time)
        until the client closes its side and every request has ended."""
        lock = asyncio.Lock()

        async def send(response: pb.ModelStreamInferResponse) -> None:
            async with lock:
                await write(response)

        running: set[asyncio.Task[None]] = set()
        try:
            async for request in requests:
                task = asyncio.ensure_future(self._one(request, send, call))
                running.add(task)
                task.add_done_callback(running.discard)
            while running:
                await asyncio.wait(set(running))
        finally:
            for task in running:
                task.cancel()  # the client went away: each request closes its stream

    async def _one(self, request: pb.ModelInferRequest, send: Write, call: Call) -> None:
        arrival = time.monotonic()
        parameters = parameters_of(request.parameters)
        empty_final = parameters.pop(ENABLE_EMPTY_FINAL, False) is True
        counted = False
        try:
            if self._sheds():
                raise Overloaded("the gateway has its limit of requests in progress; retry later")
            self._count(1)
            counted = True
            await self._run(request, parameters, arrival, send, call)
            if empty_final:
                await send(pb.ModelStreamInferResponse(infer_response=_last(request)))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            failure = failure_of(exc)
            await send(
                pb.ModelStreamInferResponse(
                    error_message=failure.message, infer_response=_last(request)
                )
            )
        finally:
            if counted:
                self._count(-1)

    async def _run(
        self,
        request: pb.ModelInferRequest,
        parameters: dict[str, object],
        arrival: float,
        send: Write,
        call: Call,
    ) -> None:
        info = await self._catalog.get(request.model_name, request.model_version or None)
        options = infer_options(
            parameters,
            request.id or None,
            self._default_timeout,
            self._max_timeout,
            deadline=None if call.deadline is None else call.deadline - (arrival - call.arrival),
        )
        response_mapping = mapping_for(info.response_class.DESCRIPTOR)
        requested = [
            RequestOutput(name=o.name, parameters=parameters_of(o.parameters))
            for o in request.outputs
        ]
        wanted = wanted_outputs(requested or None, response_mapping.specs, False)
        request_mapping = mapping_for(info.request_class.DESCRIPTOR)
        inputs, raw = read_inputs(request, request_mapping.declared)
        payload, batched = request_payload(request_mapping, info.request_class, inputs, info.name)
        seconds = seconds_left(info, options.timeout, arrival)
        items = await started(
            self._dispatcher.stream(
                info, payload, seconds=seconds, priority=options.priority,
                request_id=call.request_id,
            )
        )  # fmt: skip
        pieces = seamless(items, info.name)
        try:
            async for item in pieces:
                if not isinstance(item, Chunk):
                    response_message(item.result, info)  # raises for a failed task
                    return
                message = _piece(item.payload, info)
                response = infer_response(
                    model_name=info.name,
                    model_version=info.version,
                    request_id=request.id,
                    outcome=Outcome(output_tensors(message, info), batched),
                    wanted=wanted,
                    raw=raw,
                )
                response.parameters[FINAL].bool_param = False
                await send(pb.ModelStreamInferResponse(infer_response=response))
        finally:
            await close(pieces)


def _piece(payload: bytes, info: ModelView) -> Message:
    """A piece's response message; ``InvalidResult`` for one that does not parse."""
    message = info.response_class()
    try:
        message.ParseFromString(payload)
    except DecodeError as e:
        raise InvalidResult(
            f"the worker returned an unreadable {info.response_class.DESCRIPTOR.full_name}",
            model=info.name,
        ) from e
    return message


def _last(request: pb.ModelInferRequest) -> pb.ModelInferResponse:
    """A request's last response without outputs: its id, model and version, final."""
    response = pb.ModelInferResponse(
        model_name=request.model_name, model_version=request.model_version, id=request.id
    )
    response.parameters[FINAL].bool_param = True
    return response
