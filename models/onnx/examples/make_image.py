"""Write ``image.onnx``: a small image classifier with fixed random weights.

Input ``image`` UINT8 [-1, 224, 224, 3] (NHWC pixels); Cast to float and scale to [0, 1],
Transpose to NCHW, five 3x3 Conv + Relu layers of stride 2 (32, 64, 128, 256, 512 channels),
global average pool, Gemm to ``scores`` FP32 [-1, 1000]. The weights come from numpy's
``default_rng(SEED)``: the same file on every build. Its scores mean nothing; it has the shape
and the cost of a small real image model: about 0.25 G multiply-adds an image, as many as
MobileNet's (0.3 G), a seventh of ResNet-18's. Usage: ``make_image.py OUTPUT``.
"""

import argparse
import itertools
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SEED = 20240517
CHANNELS = (3, 32, 64, 128, 256, 512)
CLASSES = 1000
OPSET = 17
IR_VERSION = 8
"""The IR version of opset 17, fixed so the file does not change with the onnx package."""


def build() -> onnx.ModelProto:
    """The graph, checked."""
    rng = np.random.default_rng(SEED)
    weights: list[TensorProto] = [
        numpy_helper.from_array(np.array(1 / 255, np.float32), "scale"),
    ]
    nodes = [
        helper.make_node("Cast", ["image"], ["pixels"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["pixels", "scale"], ["scaled"]),
        helper.make_node("Transpose", ["scaled"], ["x0"], perm=[0, 3, 1, 2]),
    ]
    for layer, (inside, out) in enumerate(itertools.pairwise(CHANNELS), 1):
        kernel = rng.normal(0, np.sqrt(2 / (inside * 9)), (out, inside, 3, 3))
        weights += [
            numpy_helper.from_array(kernel.astype(np.float32), f"conv{layer}.w"),
            numpy_helper.from_array(np.zeros(out, np.float32), f"conv{layer}.b"),
        ]
        nodes += [
            helper.make_node(
                "Conv",
                [f"x{layer - 1}", f"conv{layer}.w", f"conv{layer}.b"],
                [f"conv{layer}"],
                kernel_shape=[3, 3],
                strides=[2, 2],
                pads=[1, 1, 1, 1],
            ),
            helper.make_node("Relu", [f"conv{layer}"], [f"x{layer}"]),
        ]
    last = len(CHANNELS) - 1
    dense = rng.normal(0, np.sqrt(1 / CHANNELS[-1]), (CHANNELS[-1], CLASSES))
    weights += [
        numpy_helper.from_array(dense.astype(np.float32), "dense.w"),
        numpy_helper.from_array(np.zeros(CLASSES, np.float32), "dense.b"),
    ]
    nodes += [
        helper.make_node("GlobalAveragePool", [f"x{last}"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["features"]),
        helper.make_node("Gemm", ["features", "dense.w", "dense.b"], ["scores"]),
    ]
    graph = helper.make_graph(
        nodes,
        "image",
        [helper.make_tensor_value_info("image", TensorProto.UINT8, ["batch", 224, 224, 3])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", CLASSES])],
        initializer=weights,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="conveyor",
        ir_version=IR_VERSION,
    )
    onnx.checker.check_model(model)
    return model


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("output", type=Path)
    args = parser.parse_args()
    args.output.write_bytes(build().SerializeToString())


if __name__ == "__main__":
    main()
