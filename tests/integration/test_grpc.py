"""tritonclient.grpc, unchanged, against the gateway's gRPC service on a real stack.

Registry, gateway and workers run as processes on the test's brokers; the gateway serves gRPC
on a free port (``GRPC_PORT``). The ``contents`` form of tensors, which tritonclient's client
never sends (it sends raw bytes), goes through tritonclient's own generated stub.
"""

import threading
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
import redis
import tritonclient.grpc as triton
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from tests.integration.stack import SLOW_MODEL, Served, Stack, free_port, wait_until

IRIS_SETOSA = [[5.1, 3.5, 1.4, 0.2]]
KEY = "grpc-test-key-0123456789"


class GrpcServed(Served):
    """model_a, model_b and a slow model, with the gateway's gRPC on a free port."""

    def __init__(self) -> None:
        self.grpc_port = free_port()
        super().__init__(RESULT_TTL="600", GRPC_PORT=str(self.grpc_port), MAX_TIMEOUT="60")
        try:
            self.slow = self.model_name("slow")
            prefix = f"test:{self.id}:slow:"
            self.start_worker(SLOW_MODEL, self.slow, SLOW_MODEL_COUNTER_PREFIX=prefix)
        except BaseException:
            self.close()
            raise

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"


@pytest.fixture(scope="module")
def stack() -> Iterator[GrpcServed]:
    with GrpcServed() as stack:
        yield stack


@pytest.fixture
def client(stack: GrpcServed) -> Iterator[triton.InferenceServerClient]:
    client = triton.InferenceServerClient(stack.target)
    try:
        yield client
    finally:
        client.close()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _text_input(text: str, shape: list[int]) -> triton.InferInput:
    tensor = triton.InferInput("data", shape, "BYTES")
    tensor.set_data_from_numpy(np.array([text], dtype=np.object_).reshape(shape))
    return tensor


def test_liveness_readiness_and_server_metadata(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    metadata = client.get_server_metadata()
    assert metadata.name == "conveyor"
    assert "binary_tensor_data" in metadata.extensions


def test_model_metadata_and_readiness(
    client: triton.InferenceServerClient, stack: GrpcServed
) -> None:
    assert client.is_model_ready(stack.model_a)
    assert client.is_model_ready(stack.model_b, "1")
    model_b = client.get_model_metadata(stack.model_b, as_json=True)
    assert model_b["name"] == stack.model_b
    assert model_b["versions"] == ["1"]
    assert model_b["inputs"] == [{"name": "features", "datatype": "FP64", "shape": ["-1"]}]
    assert [o["name"] for o in model_b["outputs"]] == [
        "label",
        "probabilities",
        "probabilities_keys",
    ]


def test_infer_model_a_with_raw_contents(
    client: triton.InferenceServerClient, stack: GrpcServed
) -> None:
    result = client.infer(stack.model_a, [_text_input("héllo", [1])], request_id="a-1")
    reply = result.as_numpy("reply")
    assert reply is not None and reply.shape == (1,)
    assert _text(reply[0]) == "Processed message: héllo"
    response = result.get_response()
    assert (response.model_name, response.model_version, response.id) == (
        stack.model_a,
        "1",
        "a-1",
    )
    assert len(response.raw_output_contents) == 1  # raw in, raw out, as Triton answers


def test_infer_model_b_with_raw_contents_and_a_batch_of_one(
    client: triton.InferenceServerClient, stack: GrpcServed
) -> None:
    features = triton.InferInput("features", [1, 4], "FP32")
    features.set_data_from_numpy(np.array(IRIS_SETOSA, dtype=np.float32))
    outputs = [triton.InferRequestedOutput(n) for n in ("label", "probabilities")]
    result = client.infer(stack.model_b, [features], outputs=outputs, priority=1)
    label, probabilities = result.as_numpy("label"), result.as_numpy("probabilities")
    assert label is not None and probabilities is not None
    assert label.shape == (1, 1) and _text(label[0, 0]) == "setosa"
    assert probabilities.shape == (1, 3) and probabilities.dtype == np.float64
    assert abs(float(probabilities.sum()) - 1.0) < 1e-6
    assert result.as_numpy("probabilities_keys") is None  # not asked for


def test_infer_with_contents_through_tritonclients_stub(stack: GrpcServed) -> None:
    with grpc.insecure_channel(stack.target) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        text = service_pb2.ModelInferRequest.InferInputTensor(
            name="data", datatype="BYTES", shape=[1]
        )
        text.contents.bytes_contents.append(b"plain")
        request = service_pb2.ModelInferRequest(model_name=stack.model_a, inputs=[text])
        response, call = stub.ModelInfer.with_call(
            request, metadata=(("x-request-id", "trace-grpc-1"),), timeout=30
        )
        assert list(response.outputs[0].contents.bytes_contents) == [b"Processed message: plain"]
        assert dict(call.initial_metadata())["x-request-id"] == "trace-grpc-1"

        features = service_pb2.ModelInferRequest.InferInputTensor(
            name="features", datatype="FP64", shape=[4]
        )
        features.contents.fp64_contents.extend(IRIS_SETOSA[0])
        request = service_pb2.ModelInferRequest(
            model_name=stack.model_b, model_version="1", inputs=[features]
        )
        response = stub.ModelInfer(request, timeout=30)
        outputs = {o.name: o for o in response.outputs}
        assert list(outputs["label"].contents.bytes_contents) == [b"setosa"]
        assert abs(sum(outputs["probabilities"].contents.fp64_contents) - 1.0) < 1e-6
        assert response.model_version == "1"


def test_an_explicit_version(client: triton.InferenceServerClient, stack: GrpcServed) -> None:
    result = client.infer(stack.model_a, [_text_input("v", [1, 1])], model_version="1")
    assert result.get_response().model_version == "1"
    reply = result.as_numpy("reply")
    assert reply is not None and reply.shape == (1, 1)
    with pytest.raises(InferenceServerException) as caught:
        client.infer(stack.model_a, [_text_input("v", [1])], model_version="999")
    assert caught.value.status() == "StatusCode.NOT_FOUND"


def test_an_unknown_model_raises_a_readable_error(client: triton.InferenceServerClient) -> None:
    with pytest.raises(InferenceServerException) as caught:
        client.get_model_metadata("no_such_model_here")
    assert caught.value.status() == "StatusCode.NOT_FOUND"
    assert "no_such_model_here" in caught.value.message()
    with pytest.raises(InferenceServerException) as caught:
        client.infer("no_such_model_here", [_text_input("x", [1])])
    assert caught.value.status() == "StatusCode.NOT_FOUND"
    assert not client.is_model_ready("no_such_model_here")


def test_a_wrong_input_is_invalid_argument(
    client: triton.InferenceServerClient, stack: GrpcServed
) -> None:
    words = triton.InferInput("features", [4], "BYTES")
    words.set_data_from_numpy(np.array(["a", "b", "c", "d"], dtype=np.object_))
    with pytest.raises(InferenceServerException) as caught:
        client.infer(stack.model_b, [words])
    assert caught.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "expects FP64" in caught.value.message()


def test_timeouts_the_deadline_and_tritons_microseconds(
    client: triton.InferenceServerClient, stack: GrpcServed
) -> None:
    with pytest.raises(InferenceServerException) as caught:
        client.infer(stack.slow, [_text_input("d:3", [1])], client_timeout=0.5)
    assert caught.value.status() == "StatusCode.DEADLINE_EXCEEDED"
    with pytest.raises(InferenceServerException) as caught:
        client.infer(stack.slow, [_text_input("t:3", [1])], timeout=500_000)  # 0.5 s
    assert caught.value.status() == "StatusCode.DEADLINE_EXCEEDED"
    assert "no result within" in caught.value.message()
    fast = client.infer(stack.slow, [_text_input("f:0", [1])], timeout=20_000_000)
    assert "tag=f" in _text(fast.as_numpy("reply")[0])


def test_a_message_over_max_body_bytes_is_refused(
    client: triton.InferenceServerClient, stack: GrpcServed
) -> None:
    big = _text_input("x" * (1024 * 1024 + 1), [1])
    with pytest.raises(InferenceServerException) as caught:
        client.infer(stack.model_a, [big])
    assert caught.value.status() == "StatusCode.RESOURCE_EXHAUSTED"


def test_load_and_unload_are_refused(client: triton.InferenceServerClient) -> None:
    with pytest.raises(InferenceServerException) as caught:
        client.load_model("anything")
    assert caught.value.status() == "StatusCode.UNIMPLEMENTED"
    assert "models register themselves" in caught.value.message()


def test_health_checking_and_reflection(stack: GrpcServed) -> None:
    with grpc.insecure_channel(stack.target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "inference.GRPCInferenceService"):
            answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        ask = reflection_pb2.ServerReflectionRequest(list_services="")
        (answer,) = list(reflection.ServerReflectionInfo(iter([ask]), timeout=10))
        names = {s.name for s in answer.list_services_response.service}
        assert "inference.GRPCInferenceService" in names
        assert "grpc.health.v1.Health" in names


def test_grpc_calls_count_in_the_gateways_metrics(
    client: triton.InferenceServerClient, stack: GrpcServed
) -> None:
    client.infer(stack.model_a, [_text_input("counted", [1])])
    metrics = httpx.get(f"{stack.api_url}/metrics", timeout=10).text
    counted = [
        line
        for line in metrics.splitlines()
        if line.startswith("conveyor_requests_total")
        and 'endpoint="grpc_infer"' in line
        and f'model="{stack.model_a}"' in line
        and 'outcome="ok"' in line
    ]
    assert len(counted) == 1 and float(counted[0].rsplit(" ", 1)[1]) >= 1, metrics


def test_api_keys_and_the_in_flight_bound() -> None:
    port = free_port()
    with Stack(GRPC_PORT=str(port), API_KEYS=KEY, MAX_INFLIGHT="1") as guarded:
        slow = guarded.model_name("slow")
        prefix = f"test:{guarded.id}:slow:"
        guarded.start_worker(SLOW_MODEL, slow, SLOW_MODEL_COUNTER_PREFIX=prefix)
        client = triton.InferenceServerClient(f"127.0.0.1:{port}")
        counters = redis.Redis.from_url(guarded.redis_url)
        try:
            assert client.is_server_live()  # liveness and readiness stay open
            with pytest.raises(InferenceServerException) as caught:
                client.get_model_metadata(slow)
            assert caught.value.status() == "StatusCode.UNAUTHENTICATED"
            assert "Bearer" in caught.value.message()
            keyed = {"authorization": f"Bearer {KEY}"}
            assert client.get_model_metadata(slow, headers=keyed).name == slow

            answers: list[Any] = []
            busy = threading.Thread(
                target=lambda: answers.append(
                    client.infer(slow, [_text_input("busy:2", [1])], headers=keyed)
                )
            )
            busy.start()
            try:
                # The busy call holds the one place while the model runs it.
                wait_until(lambda: counters.get(f"{prefix}busy:started"), 30, what="busy call")
                with pytest.raises(InferenceServerException) as caught:
                    client.get_model_metadata(slow, headers=keyed)
            finally:
                busy.join(30)
            assert caught.value.status() == "StatusCode.RESOURCE_EXHAUSTED"
            assert "limit of 1 requests" in caught.value.message()
            assert len(answers) == 1  # the busy call itself was answered
        finally:
            client.close()
            counters.close()


def test_statistics_configuration_and_index_over_grpc(
    client: triton.InferenceServerClient, stack: GrpcServed
) -> None:
    def success(model: str) -> int:
        [stats] = client.get_inference_statistics(model, as_json=True)["model_stats"]
        return int(stats.get("inference_stats", {}).get("success", {}).get("count", 0))

    before = success(stack.model_b)
    features = triton.InferInput("features", [1, 4], "FP32")
    features.set_data_from_numpy(np.array(IRIS_SETOSA, dtype=np.float32))
    for _ in range(2):
        client.infer(stack.model_b, [features])
    # Workers write their statistics within a few milliseconds of their results.
    wait_until(lambda: success(stack.model_b) >= before + 2, 10.0, what="two requests counted")
    [stats] = client.get_inference_statistics(stack.model_b, "1").model_stats
    assert (stats.name, stats.version) == (stack.model_b, "1")
    assert stats.inference_stats.compute_infer.ns > 0 and stats.inference_stats.queue.ns > 0
    assert stats.last_inference > 0
    every = {(s.name, s.version) for s in client.get_inference_statistics().model_stats}
    assert {(stack.model_a, "1"), (stack.model_b, "1")} <= every

    config = client.get_model_config(stack.model_b).config
    assert (config.name, config.platform, config.max_batch_size) == (
        stack.model_b,
        "conveyor_protobuf",
        32,
    )
    assert [(i.name, list(i.dims)) for i in config.input] == [("features", [-1])]
    assert [o.name for o in config.output] == ["label", "probabilities", "probabilities_keys"]

    index = {m.name: m for m in client.get_model_repository_index().models}
    assert index[stack.model_a].state == "READY" and index[stack.model_a].version == "1"
    with pytest.raises(InferenceServerException) as unknown:
        client.get_model_config("no_such_model")
    assert unknown.value.status() == "StatusCode.NOT_FOUND"
