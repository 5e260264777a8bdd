"""Run the ONNX worker: ``python -m models.onnx`` (``//models/onnx:server``, the image's entry).

Without ``MODEL_PATH`` it serves the bundled example image model (``examples/image.onnx``) as
model ``onnx``: the image's health check asks the registry for the model named after this
package (tools/model/defs.bzl).
"""

from pathlib import Path

from worker_base import run_model
from worker_base.onnx_model import OnnxModel, OnnxSettings

BUNDLED_MODEL = Path(__file__).parent / "examples" / "image.onnx"
"""Where Bazel's genrule puts the example (in the runfiles)."""


class ServerSettings(OnnxSettings):
    """``OnnxSettings`` with the bundled model as the default."""

    model_path: Path = BUNDLED_MODEL
    model_name: str | None = "onnx"


def main() -> None:
    """Serve until SIGTERM or SIGINT."""
    settings = ServerSettings()
    run_model(OnnxModel(settings), settings)


if __name__ == "__main__":
    main()
