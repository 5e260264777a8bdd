"""Write ``iris.onnx``: model_b's classifier (models/model_b/train.py) converted with skl2onnx.

Input ``features`` FP32 [-1, 4]; outputs ``label`` INT64 [-1] and ``probabilities`` FP32
[-1, 3] (plain tensors: no ZipMap). Usage: ``make_iris.py OUTPUT`` (Bazel runs it in a genrule).
"""

import argparse
from pathlib import Path

from onnx import ModelProto
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.linear_model import LogisticRegression

from models.model_b.train import train

OPSETS = {"": 17, "ai.onnx.ml": 3}
"""Fixed, so the file does not change with the newest opset skl2onnx knows."""


def build() -> ModelProto:
    """The converted classifier."""
    pipeline = train()["pipeline"]
    model: ModelProto = convert_sklearn(
        pipeline,
        name="iris",
        initial_types=[("features", FloatTensorType([None, 4]))],
        options={LogisticRegression: {"zipmap": False}},
        target_opset=OPSETS,
    )
    return model


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("output", type=Path)
    args = parser.parse_args()
    args.output.write_bytes(build().SerializeToString())


if __name__ == "__main__":
    main()
