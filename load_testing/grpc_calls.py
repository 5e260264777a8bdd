"""Single gRPC calls of the Open Inference Protocol through a real client, for the scenarios'
checks around h2load's runs: is the front end served, does one call answer right, what status
does a call get. The stubs are tritonclient.grpc's (``inference.GRPCInferenceService``).
"""

from __future__ import annotations

from typing import Final

import grpc
from tritonclient.grpc import service_pb2, service_pb2_grpc

__all__ = ["METHOD", "call_status", "infer", "served"]

METHOD: Final = "/inference.GRPCInferenceService/ModelInfer"
"""The path of ``ModelInfer`` (h2load posts to it)."""

_CHANNEL_OPTIONS: Final = [
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
]


def served(target: str, timeout: float = 3.0) -> bool:
    """True when ``target`` (``host:port``) answers ``ServerLive`` with live."""
    with grpc.insecure_channel(target, options=_CHANNEL_OPTIONS) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        try:
            answer = stub.ServerLive(service_pb2.ServerLiveRequest(), timeout=timeout)
        except grpc.RpcError:
            return False
        return bool(answer.live)


def infer(
    target: str, request: service_pb2.ModelInferRequest, timeout: float = 30.0
) -> service_pb2.ModelInferResponse:
    """One ``ModelInfer``; raise ``grpc.RpcError`` when the call fails."""
    with grpc.insecure_channel(target, options=_CHANNEL_OPTIONS) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        response: service_pb2.ModelInferResponse = stub.ModelInfer(request, timeout=timeout)
        return response


def call_status(
    target: str, request: service_pb2.ModelInferRequest, timeout: float = 30.0
) -> tuple[grpc.StatusCode, str]:
    """The status code and message one ``ModelInfer`` ends with (``OK`` and "" on success)."""
    try:
        infer(target, request, timeout)
    except grpc.RpcError as e:
        if isinstance(e, grpc.Call):
            return e.code(), e.details() or ""
        return grpc.StatusCode.UNKNOWN, str(e)
    return grpc.StatusCode.OK, ""
