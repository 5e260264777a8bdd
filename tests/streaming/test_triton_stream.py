"""tritonclient.grpc, unchanged, streaming from the gateway (``ModelStreamInfer``): a response
per piece, then the empty final response it asked for."""

import queue
from typing import Any

import numpy as np
import pytest

from tests.streaming.target import Target

triton = pytest.importorskip("tritonclient.grpc")


def _inputs(prompt: str, max_tokens: int, seed: int) -> list[Any]:
    values = [
        ("prompt", "BYTES", np.array([prompt.encode()], dtype=np.object_)),
        ("max_tokens", "INT32", np.array([max_tokens], dtype=np.int32)),
        ("seed", "INT64", np.array([seed], dtype=np.int64)),
    ]
    inputs = []
    for name, datatype, data in values:
        tensor = triton.InferInput(name, [1], datatype)
        tensor.set_data_from_numpy(data)
        inputs.append(tensor)
    return inputs


def test_stream_infer_gets_the_pieces(target: Target) -> None:
    if target.grpc_target is None:
        pytest.skip("gRPC runs on a real stack only (STREAM_STACK=1)")
    results: queue.Queue[Any] = queue.Queue()
    client = triton.InferenceServerClient(target.grpc_target)
    try:
        client.start_stream(callback=lambda result, error: results.put(error or result))
        client.async_stream_infer(
            target.model,
            _inputs("a b", 5, 7),
            request_id="one",
            enable_empty_final_response=True,
        )
        texts = []
        while True:
            result = results.get(timeout=30)
            assert not isinstance(result, Exception), result
            response = result.get_response()
            assert response.id == "one"
            if response.parameters["triton_final_response"].bool_param:
                assert not response.outputs
                break
            texts.append(result.as_numpy("text")[0].decode())
        client.stop_stream()
        whole = client.infer(target.model, _inputs("a b", 5, 7))
    finally:
        client.close()
    assert len(texts) == 5
    assert "".join(texts) == whole.as_numpy("text")[0].decode()
