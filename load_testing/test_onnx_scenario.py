"""The onnx scenario's parts that need no stack: its bodies, the baseline loop on a tiny graph,
its verdicts, and pinning a process to CPUs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper
from tritonclient.grpc import service_pb2

from load_testing import cores, onnx_scenario
from load_testing import tensor_payloads as tp
from load_testing.report import Row
from load_testing.wrk import WrkResult


def test_the_rest_body_carries_one_image_in_binary() -> None:
    image = onnx_scenario._images(1)
    body = onnx_scenario.rest_body(image)
    header_size = int(body.headers[tp.BINARY_HEADER])
    header = json.loads(body.body[:header_size])
    assert header["inputs"] == [{"name": "image", "datatype": "UINT8", "shape": [1, 224, 224, 3],
                                 "parameters": {"binary_data_size": image.size}}]  # fmt: skip
    assert header["parameters"] == {"binary_data_output": True}
    assert body.body[header_size:] == image.tobytes()


def test_the_grpc_request_carries_the_image_raw() -> None:
    image = onnx_scenario._images(1)
    request = service_pb2.ModelInferRequest.FromString(onnx_scenario.grpc_request("m", image))
    assert request.model_name == "m"
    assert list(request.inputs[0].shape) == [1, 224, 224, 3]
    assert request.raw_input_contents[0] == image.tobytes()


def _tiny_model(path: Path) -> Path:
    """An ``image`` -> ``scores`` graph cheap enough for a unit test."""
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["image"], ["pixels"], to=TensorProto.FLOAT),
            helper.make_node("ReduceMean", ["pixels"], ["scores"], axes=[2, 3], keepdims=0),
        ],
        "tiny",
        [helper.make_tensor_value_info("image", TensorProto.UINT8, ["batch", 224, 224, 3])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", 224])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    path.write_bytes(model.SerializeToString())
    return path


def test_the_baseline_counts_images_and_picks_the_best_batch(tmp_path: Path) -> None:
    cpu = min(os.sched_getaffinity(0))
    baseline = onnx_scenario.InProcess(_tiny_model(tmp_path / "tiny.onnx"), 1, {cpu})
    before = os.sched_getaffinity(0)
    result = baseline.run(0.05, 4)
    assert os.sched_getaffinity(0) == before  # the loop's pinning is undone
    assert result.requests % 4 == 0 and result.requests >= 4
    assert result.p50_ms <= result.p99_ms <= result.max_ms
    baseline.calibrate(0.02)
    assert baseline.batch in onnx_scenario.BATCH_SIZES
    scores = baseline.scores(onnx_scenario._images(2))
    assert scores.shape == (2, 224)


def _row(system: str, number: int, rps: float) -> Row:
    result = WrkResult(int(rps * 10), 10.0, 1.0, 2.0, 3.0, 4.0, statuses={200: int(rps * 10)})
    return Row(system, number, result, {})


def test_the_verdicts() -> None:
    rows = [
        _row(onnx_scenario.BASELINE, 1, 100), _row(onnx_scenario.REST_BINARY, 1, 85),
        _row(onnx_scenario.GRPC_RAW, 1, 70), _row(onnx_scenario.WHEEL, 1, 83),
    ]  # fmt: skip
    verdicts = onnx_scenario._verdicts(rows)
    assert [(v.goal, v.met) for v in verdicts] == [
        ("onnx served", True), ("onnx served", False), ("onnx wheel", True)
    ]  # fmt: skip
    missing = onnx_scenario._verdicts(rows[:2])
    assert "not measured" in missing[1].measured and not missing[1].met


def test_scores_are_checked_to_a_tolerance() -> None:
    want = np.linspace(-1, 1, 1000, dtype=np.float32).reshape(1, 1000)
    assert onnx_scenario._check_scores(want + 1e-7, want) is None
    assert "differ" in (onnx_scenario._check_scores(want + 0.1, want) or "")
    assert "shape" in (onnx_scenario._check_scores(want[:, :10], want) or "")


def test_split_leaves_cores_for_the_rest() -> None:
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("one CPU: nothing to split")
    model, others = cores.split(1)
    assert model == {cpus[-1]} and others == set(cpus[:-1])
    with pytest.raises(ValueError, match="leaves none"):
        cores.split(len(cpus))


def test_pin_moves_every_thread_of_a_process() -> None:
    before = os.sched_getaffinity(0)
    cpu = min(before)
    try:
        cores.pin([os.getpid()], {cpu})
        assert os.sched_getaffinity(0) == {cpu}
    finally:
        cores.pin([os.getpid()], before)
    assert os.sched_getaffinity(0) == before
    cores.pin([2**22 + 7], {cpu})  # a process that is gone is skipped
