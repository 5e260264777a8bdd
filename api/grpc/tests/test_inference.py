"""The inference service over real gRPC on loopback, with fakes behind it: every call, the
tensors both ways, the parameters' meanings, and each error as a status."""

import asyncio
import struct
from dataclasses import replace
from typing import Any

import grpc
import pytest

from api.exceptions import ModelUnavailable, Overloaded, ResultTimeout
from api.grpc.tests.served import served
from api.oip.tests.fakes import FakeCatalog, FakeDispatcher, echo
from api.oip.tests.fakes import model_a as model_a_versions
from proto import model_a_pb2, model_b_pb2, task_pb2
from proto.oip import grpc_service_pb2 as pb

pytestmark = pytest.mark.asyncio

IRIS = [5.1, 3.5, 1.4, 0.2]


def _text_input(text: str, shape: tuple[int, ...] = (1,)) -> pb.ModelInferRequest.InferInputTensor:
    tensor = pb.ModelInferRequest.InferInputTensor(name="data", datatype="BYTES", shape=shape)
    tensor.contents.bytes_contents.append(text.encode())
    return tensor


def _bytes_element(text: str) -> bytes:
    data = text.encode()
    return struct.pack("<I", len(data)) + data


async def _error(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


async def test_liveness_readiness_and_server_metadata() -> None:
    async with served() as s:
        assert (await s.stub.ServerLive(pb.ServerLiveRequest())).live
        assert (await s.stub.ServerReady(pb.ServerReadyRequest())).ready
        s.dispatcher.brokers_up = False
        assert not (await s.stub.ServerReady(pb.ServerReadyRequest())).ready
        metadata = await s.stub.ServerMetadata(pb.ServerMetadataRequest())
        assert (metadata.name, metadata.version) == ("conveyor", "1")
        assert "binary_tensor_data" in metadata.extensions


async def test_model_metadata_and_readiness() -> None:
    async with served() as s:
        meta = await s.stub.ModelMetadata(pb.ModelMetadataRequest(name="model_b"))
        assert (meta.name, list(meta.versions), meta.platform) == (
            "model_b", ["1", "2"], "conveyor_protobuf"
        )  # fmt: skip
        assert [(t.name, t.datatype, list(t.shape)) for t in meta.inputs] == [
            ("features", "FP64", [-1])
        ]
        assert [t.name for t in meta.outputs] == ["label", "probabilities", "probabilities_keys"]
        ready = s.stub.ModelReady
        assert (await ready(pb.ModelReadyRequest(name="model_a"))).ready
        assert (await ready(pb.ModelReadyRequest(name="model_b", version="1"))).ready
        assert not (await ready(pb.ModelReadyRequest(name="nope"))).ready
        assert not (await ready(pb.ModelReadyRequest(name="model_b", version="7"))).ready
        error = await _error(s.stub.ModelMetadata(pb.ModelMetadataRequest(name="nope")))
        assert error.code() == grpc.StatusCode.NOT_FOUND
        assert "nope" in error.details()


async def test_infer_with_contents_answers_contents() -> None:
    async with served() as s:
        request = pb.ModelInferRequest(model_name="model_a", id="r-1", inputs=[_text_input("hé")])
        response = await s.stub.ModelInfer(request)
        assert (response.model_name, response.model_version, response.id) == (
            "model_a", "1", "r-1"
        )  # fmt: skip
        (output,) = response.outputs
        assert (output.name, output.datatype, list(output.shape)) == ("reply", "BYTES", [1])
        assert list(output.contents.bytes_contents) == ["Processed message: hé".encode()]
        assert not response.raw_output_contents
        (run,) = s.dispatcher.runs
        assert model_a_pb2.ModelARequest.FromString(run.payload).data == "hé"


async def test_infer_with_raw_contents_answers_raw_and_keeps_the_batch_dimension() -> None:
    async with served() as s:
        features = pb.ModelInferRequest.InferInputTensor(
            name="features", datatype="FP32", shape=[1, 4]
        )
        request = pb.ModelInferRequest(
            model_name="model_b",
            inputs=[features],
            raw_input_contents=[struct.pack("<4f", *IRIS)],
            outputs=[
                pb.ModelInferRequest.InferRequestedOutputTensor(name="probabilities"),
                pb.ModelInferRequest.InferRequestedOutputTensor(name="label"),
            ],
        )
        response = await s.stub.ModelInfer(request)
        assert response.model_version == "2"  # the default: the highest live version
        assert len(response.id) == 32  # none given: the gateway makes one
        assert [(o.name, o.datatype, list(o.shape)) for o in response.outputs] == [
            ("probabilities", "FP64", [1, 3]),
            ("label", "BYTES", [1, 1]),
        ]
        probabilities = struct.unpack("<3d", response.raw_output_contents[0])
        assert abs(sum(probabilities) - 1) < 1e-9
        assert response.raw_output_contents[1] == _bytes_element("setosa")
        sent = model_b_pb2.ModelBRequest.FromString(s.dispatcher.runs[0].payload)
        assert [round(x, 5) for x in sent.features] == IRIS


async def test_infer_on_a_version_with_fp64_contents() -> None:
    async with served() as s:
        features = pb.ModelInferRequest.InferInputTensor(
            name="features", datatype="FP64", shape=[4]
        )
        features.contents.fp64_contents.extend(IRIS)
        request = pb.ModelInferRequest(model_name="model_b", model_version="1", inputs=[features])
        response = await s.stub.ModelInfer(request)
        assert response.model_version == "1"
        assert s.dispatcher.runs[0].model.version == "1"
        outputs = {o.name: o for o in response.outputs}
        assert list(outputs["label"].contents.bytes_contents) == [b"setosa"]
        assert len(outputs["probabilities"].contents.fp64_contents) == 3
        assert list(outputs["probabilities_keys"].contents.bytes_contents) == [
            b"setosa", b"versicolor", b"virginica"
        ]  # fmt: skip


async def test_tritons_timeout_and_priority_and_the_deadline_reach_the_dispatcher() -> None:
    async with served() as s:
        request = pb.ModelInferRequest(model_name="model_a", inputs=[_text_input("x")])
        request.parameters["timeout"].int64_param = 2_000_000  # microseconds
        request.parameters["priority"].uint64_param = 1  # Triton's highest
        await s.stub.ModelInfer(request)
        run = s.dispatcher.runs[-1]
        assert (run.priority, 1.5 < run.timeout <= 2.0) == (9, True)
        plain = pb.ModelInferRequest(model_name="model_a", inputs=[_text_input("x")])
        await s.stub.ModelInfer(plain)
        assert (s.dispatcher.runs[-1].priority, 4.5 < s.dispatcher.runs[-1].timeout <= 5.0) == (
            0, True
        )  # fmt: skip
        await s.stub.ModelInfer(plain, timeout=1.0)  # the gRPC deadline counts as the timeout
        assert 0.5 < s.dispatcher.runs[-1].timeout <= 1.05  # gRPC rounds the deadline up
        await s.stub.ModelInfer(request, timeout=30.0)  # the smaller of deadline and timeout
        assert 1.5 < s.dispatcher.runs[-1].timeout <= 2.0
        request.parameters["timeout"].int64_param = 61_000_000
        error = await _error(s.stub.ModelInfer(request))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "microseconds" in error.details()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: setattr(r, "model_name", "model_b"), "unknown input 'data'"),
        (lambda r: r.inputs[0].shape.append(3), "shape [1, 3], i.e. 3 elements"),
        (lambda r: setattr(r.inputs[0], "datatype", "FP64"), "contents.fp64_contents"),
        (lambda r: setattr(r.inputs[0], "datatype", "FP16"), "raw_input_contents"),
        (lambda r: setattr(r.inputs[0], "datatype", "NOPE"), "unknown datatype"),
        (lambda r: r.inputs.append(r.inputs[0]), "given twice"),
        (lambda r: r.raw_input_contents.append(b"x"), "has contents while"),
        (lambda r: r.raw_input_contents.extend([b"", b""]), "2 entries for 1 inputs"),
        (lambda r: r.parameters["sequence_id"].CopyFrom(pb.InferParameter(int64_param=7)),
         "sequences"),
        (lambda r: r.outputs.add(name="nope"), "unknown output 'nope'"),
        (lambda r: r.parameters["priority"].CopyFrom(pb.InferParameter(int64_param=-1)),
         "priority must be"),
        (lambda r: r.parameters["timeout"].CopyFrom(pb.InferParameter(double_param=1.5)),
         "timeout must be"),
    ],
)  # fmt: skip
async def test_requests_that_do_not_fit_are_invalid_argument(mutate: Any, message: str) -> None:
    async with served() as s:
        request = pb.ModelInferRequest(model_name="model_a", inputs=[_text_input("x")])
        mutate(request)
        error = await _error(s.stub.ModelInfer(request))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
        assert message in error.details()
        assert not s.dispatcher.runs


async def test_narrow_integers_are_checked_against_their_datatype() -> None:
    async with served() as s:
        features = pb.ModelInferRequest.InferInputTensor(
            name="features", datatype="INT8", shape=[4]
        )
        features.contents.int_contents.extend([1, 2, 300, 4])
        request = pb.ModelInferRequest(model_name="model_b", inputs=[features])
        error = await _error(s.stub.ModelInfer(request))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "300 is out of the range of INT8" in error.details()


@pytest.mark.parametrize(
    ("failure", "code", "retry_after"),
    [
        (Overloaded("the queue is full", retry_after=3), grpc.StatusCode.RESOURCE_EXHAUSTED, "3"),
        (ModelUnavailable("no worker"), grpc.StatusCode.UNAVAILABLE, "1"),
        (
            ResultTimeout("no result", model="m", task_id="t"),
            grpc.StatusCode.DEADLINE_EXCEEDED,
            None,
        ),
        (RuntimeError("boom"), grpc.StatusCode.INTERNAL, None),
    ],
)
async def test_dispatcher_errors_are_statuses(
    failure: Exception, code: grpc.StatusCode, retry_after: str | None
) -> None:
    dispatcher = FakeDispatcher({"model_a": echo}, error=failure)
    async with served(dispatcher=dispatcher) as s:
        call = s.stub.ModelInfer(
            pb.ModelInferRequest(model_name="model_a", inputs=[_text_input("x")])
        )
        error = await _error(call)
        assert error.code() == code
        assert error.details()
        if isinstance(failure, RuntimeError):
            assert "boom" not in error.details()  # an unexpected error is not shown
        trailing = dict(await call.trailing_metadata() or ())
        assert trailing.get("retry-after") == retry_after


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (task_pb2.TaskError.INVALID_ARGUMENT, grpc.StatusCode.INVALID_ARGUMENT),
        (task_pb2.TaskError.MODEL_ERROR, grpc.StatusCode.INTERNAL),
        (task_pb2.TaskError.DEADLINE_EXCEEDED, grpc.StatusCode.DEADLINE_EXCEEDED),
    ],
)
async def test_a_workers_error_result_is_a_status(code: Any, status: grpc.StatusCode) -> None:
    def failing(model: Any, payload: bytes) -> task_pb2.TaskResult:
        error = task_pb2.TaskError(code=code, message="the model says no")
        return task_pb2.TaskResult(model=model.name, error=error)

    async with served(dispatcher=FakeDispatcher({"model_a": failing})) as s:
        request = pb.ModelInferRequest(model_name="model_a", inputs=[_text_input("x")])
        error = await _error(s.stub.ModelInfer(request))
        assert (error.code(), error.details()) == (status, "the model says no")


async def test_a_model_without_a_live_worker_is_unavailable() -> None:
    dead = [replace(m, instances=0) for m in model_a_versions()]
    async with served(catalog=FakeCatalog(dead)) as s:
        request = pb.ModelInferRequest(model_name="model_a", inputs=[_text_input("x")])
        error = await _error(s.stub.ModelInfer(request))
        assert error.code() == grpc.StatusCode.UNAVAILABLE
        assert "no live worker" in error.details()
        assert not (await s.stub.ModelReady(pb.ModelReadyRequest(name="model_a"))).ready


async def test_api_keys_guard_every_call_but_liveness_and_readiness() -> None:
    key = "k" * 16
    async with served(api_keys=key) as s:
        assert (await s.stub.ServerLive(pb.ServerLiveRequest())).live
        assert (await s.stub.ServerReady(pb.ServerReadyRequest())).ready
        request = pb.ModelInferRequest(model_name="model_a", inputs=[_text_input("x")])
        for metadata in ((), (("authorization", "Bearer wrong-key-wrong-key"),)):
            error = await _error(s.stub.ModelInfer(request, metadata=metadata))
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED
            assert "authorization: Bearer" in error.details()
        error = await _error(s.stub.ServerMetadata(pb.ServerMetadataRequest()))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        good = (("authorization", f"Bearer {key}"),)
        assert (await s.stub.ModelInfer(request, metadata=good)).outputs


async def test_the_request_id_is_taken_or_made_and_sent_back() -> None:
    async with served() as s:
        request = pb.ModelInferRequest(model_name="model_a", inputs=[_text_input("x")])
        call = s.stub.ModelInfer(request, metadata=(("x-request-id", "trace-me-42"),))
        await call
        assert dict(await call.initial_metadata())["x-request-id"] == "trace-me-42"
        call = s.stub.ModelInfer(request, metadata=(("x-request-id", "not sane!"),))
        await call
        made = dict(await call.initial_metadata())["x-request-id"]
        assert len(made) == 32 and made != "not sane!"
        assert s.dispatcher.runs[-1].request_id == made


async def test_past_the_in_flight_bound_calls_are_resource_exhausted() -> None:
    entered, release = asyncio.Event(), asyncio.Event()

    class Blocking(FakeDispatcher):
        async def run(self, info: Any, payload: bytes, **kwargs: Any) -> task_pb2.TaskResult:
            entered.set()
            await release.wait()
            return await super().run(info, payload, **kwargs)

    async with served(dispatcher=Blocking({"model_a": echo}), max_inflight=1) as s:
        request = pb.ModelInferRequest(model_name="model_a", inputs=[_text_input("x")])
        first = asyncio.ensure_future(s.stub.ModelInfer(request))
        await entered.wait()
        assert s.admission.inflight == 1
        error = await _error(s.stub.ModelInfer(request))
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "limit of 1 requests" in error.details()
        assert (await s.stub.ServerLive(pb.ServerLiveRequest())).live  # health stays open
        release.set()
        assert (await first).outputs
        assert s.admission.inflight == 0
        rejected = {
            (r.endpoint, reason): n
            for r in s.metrics.all_series()
            for reason, n in r.rejected.items()
        }
        assert rejected == {("grpc_infer", "gateway_full"): 1}


async def test_calls_are_counted_in_the_gateway_metrics() -> None:
    async with served() as s:
        request = pb.ModelInferRequest(model_name="model_a", inputs=[_text_input("x")])
        await s.stub.ModelInfer(request)
        await _error(s.stub.ModelInfer(pb.ModelInferRequest(model_name="nope")))
        await s.stub.ServerLive(pb.ServerLiveRequest())
        # The model's labels come from the real dispatcher (the integration test sees them).
        counts = {
            (r.endpoint, r.model, r.version): dict(r.by_outcome) for r in s.metrics.all_series()
        }
        assert counts == {
            ("grpc_infer", "", ""): {"ok": 1, "client_error": 1},
            ("grpc", "", ""): {"ok": 1},
        }


async def test_messages_over_max_body_bytes_are_refused_by_grpc() -> None:
    async with served(max_body_bytes=4096) as s:
        request = pb.ModelInferRequest(model_name="model_a", inputs=[_text_input("x" * 5000)])
        error = await _error(s.stub.ModelInfer(request))
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert not s.dispatcher.runs


async def test_load_and_unload_are_unimplemented() -> None:
    async with served() as s:
        for call in (
            s.stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="model_a")),
            s.stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="model_a")),
        ):
            error = await _error(call)
            assert error.code() == grpc.StatusCode.UNIMPLEMENTED
            assert error.details() == "unsupported: models register themselves"


async def test_a_method_the_gateway_lacks_is_unimplemented() -> None:
    async with served() as s:
        stream = s.channel.unary_unary(
            "/inference.GRPCInferenceService/SystemSharedMemoryStatus",
            request_serializer=lambda b: b,
            response_deserializer=lambda b: b,
        )
        error = await _error(stream(b""))
        assert error.code() == grpc.StatusCode.UNIMPLEMENTED
