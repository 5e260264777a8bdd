"""The protocol's extensions through ``tritonclient.http``, unchanged, against real processes:
statistics the workers report (counts rise with requests, failures counted apart, they outlive
a worker), model configuration, the repository index, load and unload refused."""

from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.integration.stack import Served, wait_until

SETOSA = [[5.1, 3.5, 1.4, 0.2]]


@pytest.fixture(scope="module")
def stack() -> Iterator[Served]:
    with Served(RESULT_TTL="600") as stack:
        yield stack


@pytest.fixture
def client(stack: Served) -> Iterator[triton.InferenceServerClient]:
    client = triton.InferenceServerClient(
        httpx.URL(stack.api_url).netloc.decode(), network_timeout=30.0
    )
    try:
        yield client
    finally:
        client.close()


def _stats(client: triton.InferenceServerClient, model: str) -> dict[str, Any]:
    [stat] = client.get_inference_statistics(model, "1")["model_stats"]
    assert (stat["name"], stat["version"]) == (model, "1")
    return dict(stat)


def _features(rows: list[list[float]]) -> triton.InferInput:
    tensor = triton.InferInput("features", [1, len(rows[0])], "FP32")
    tensor.set_data_from_numpy(np.array(rows, dtype=np.float32))
    return tensor


def test_statistics_rise_with_requests_and_count_failures(
    client: triton.InferenceServerClient, stack: Served
) -> None:
    before = _stats(client, stack.model_b)
    other_before = _stats(client, stack.model_a)
    for _ in range(3):
        label = client.infer(stack.model_b, [_features(SETOSA)]).as_numpy("label")
        assert label is not None
    with pytest.raises(InferenceServerException) as wrong:
        client.infer(stack.model_b, [_features([[1.0, 2.0]])])  # model_b takes 4 features
    assert wrong.value.status() == "400"

    def counted() -> dict[str, Any] | None:
        now = _stats(client, stack.model_b)
        done = now["inference_stats"]["fail"]["count"] > before["inference_stats"]["fail"]["count"]
        return now if done else None

    after = wait_until(counted, 10.0, what="the failed request counted")
    was, now = before["inference_stats"], after["inference_stats"]
    assert now["success"]["count"] == was["success"]["count"] + 3
    assert now["fail"]["count"] == was["fail"]["count"] + 1
    assert after["inference_count"] == before["inference_count"] + 3
    assert before["execution_count"] < after["execution_count"] <= before["execution_count"] + 3
    for kind in ("success", "queue", "compute_infer", "fail"):
        assert now[kind]["ns"] > was[kind]["ns"], kind
    assert now["queue"]["count"] == now["compute_infer"]["count"] == now["success"]["count"]
    assert after["last_inference"] > 0
    # Another model's statistics do not move.
    assert _stats(client, stack.model_a)["inference_stats"] == other_before["inference_stats"]


def test_every_model_and_every_version(client: triton.InferenceServerClient, stack: Served) -> None:
    every = client.get_inference_statistics()["model_stats"]
    assert {(s["name"], s["version"]) for s in every} >= {
        (stack.model_a, "1"),
        (stack.model_b, "1"),
    }
    of_a = client.get_inference_statistics(stack.model_a)["model_stats"]
    assert [(s["name"], s["version"]) for s in of_a] == [(stack.model_a, "1")]
    with pytest.raises(InferenceServerException) as unknown:
        client.get_inference_statistics(stack.model_a, "999")
    assert unknown.value.status() == "404"


def test_model_configuration(client: triton.InferenceServerClient, stack: Served) -> None:
    b = client.get_model_config(stack.model_b)
    assert (b["name"], b["platform"]) == (stack.model_b, "conveyor_protobuf")
    assert b["max_batch_size"] == 32  # model_b batches up to 32 requests per call
    assert b["input"] == [{"name": "features", "data_type": "TYPE_FP64", "dims": [-1]}]
    assert [o["name"] for o in b["output"]] == ["label", "probabilities", "probabilities_keys"]
    assert b["version_policy"] == {"all": {}}
    a = client.get_model_config(stack.model_a, "1")
    assert a["max_batch_size"] == 0  # model_a does not batch
    assert a["input"] == [{"name": "data", "data_type": "TYPE_STRING", "dims": [1]}]


def test_repository_index_and_statistics_outlive_a_worker(
    client: triton.InferenceServerClient, stack: Served
) -> None:
    gone = stack.model_name("model_a")
    worker = stack.start_worker("models.model_a", gone)
    text = triton.InferInput("data", [1], "BYTES")
    text.set_data_from_numpy(np.array(["x"], dtype=np.object_))
    client.infer(gone, [text])
    index = {e["name"]: e for e in client.get_model_repository_index()}
    for name in (stack.model_a, stack.model_b, gone):
        assert index[name]["version"] == "1"
        assert index[name]["state"] == "READY", index[name]
    assert worker.stop() == 0, worker.log()
    assert stack.instances(gone) == 0  # a stopping worker deregisters at once

    listed = {e["name"]: e for e in client.get_model_repository_index()}
    assert listed[gone]["state"] == "UNAVAILABLE"
    assert listed[gone]["reason"]
    ready = stack.http.post("/v2/repository/index", json={"ready": True})
    assert ready.status_code == 200, ready.text
    assert {e["name"] for e in ready.json()} >= {stack.model_a, stack.model_b}
    assert gone not in {e["name"] for e in ready.json()}
    # Kept in Redis, summed over the version's workers: not lost with the worker.
    assert _stats(client, gone)["inference_stats"]["success"]["count"] == 1


@pytest.mark.parametrize("action", ["load_model", "unload_model"])
def test_load_and_unload_are_unsupported(
    client: triton.InferenceServerClient, stack: Served, action: str
) -> None:
    with pytest.raises(InferenceServerException) as refused:
        getattr(client, action)(stack.model_a)
    assert refused.value.status() == "501"
    assert refused.value.message().startswith("unsupported: models register themselves")
