"""Serving an ONNX file: ``OnnxModel``, a tensor model whose tensors are the graph's.

``conveyor-onnx`` (the worker wheel's ``onnx`` extra) or ``python -m worker_base.onnx_model``
serves ``MODEL_PATH`` with the worker's usual settings (``OnnxSettings``); docs/models.md,
"Serving an ONNX file".
"""

import asyncio
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime
from pydantic import Field

from conveyor.protocol import valid_model_name, valid_version
from worker_base.config import Settings
from worker_base.exceptions import InvalidRequest
from worker_base.tensor_model import TensorModel, TensorSpec
from worker_base.worker import run_model

__all__ = ["DEFAULT_MAX_BATCH_SIZE", "ONNX_DATATYPES", "OnnxModel", "OnnxSettings", "main"]

ONNX_DATATYPES: Mapping[str, str] = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}
"""ONNX Runtime's type names and the Open Inference Protocol datatypes they serve as."""

DEFAULT_MAX_BATCH_SIZE = 32
"""Requests per ``session.run`` of a graph whose inputs all have a dynamic first dimension
(``MAX_BATCH_SIZE`` overrides it)."""

_CUDA = "CUDAExecutionProvider"
_CPU = "CPUExecutionProvider"


class OnnxSettings(Settings):
    """The worker's settings and the file it serves (environment variables).

    ``MODEL_NAME`` defaults to the file's stem, ``MODEL_VERSION`` to "1"."""

    model_path: Path = Field(description="The .onnx file to serve.")
    intra_op_threads: int = Field(
        default=0, ge=0, le=1024, description="ONNX Runtime's intra-op threads; 0: its default."
    )
    intra_op_spinning: bool = Field(
        default=False,
        description="Whether ONNX Runtime's intra-op threads spin while they wait for work "
        "(its session option session.intra_op.allow_spinning). Off by default: a worker "
        "shares its cores with the gateway and the brokers, and spinning takes CPU from them.",
    )


class OnnxModel(TensorModel):
    """Serves one ONNX graph: its inputs and outputs are the tensors, ``session.run`` the
    ``infer``.

    The constructor reads the graph's inputs and outputs (ONNX Runtime's types; a symbolic or
    unknown dimension becomes -1) through a session it then drops: the serving session is made
    in ``load``, in the worker process (after any fork of ``WORKER_PROCESSES``), on
    ``CUDAExecutionProvider`` when ONNX Runtime offers it, else on the CPU. It batches
    (``DEFAULT_MAX_BATCH_SIZE``) when every input and output has a dynamic first dimension.
    A graph tensor name that is not an identifier is served under one (``input.1`` as
    ``input_1``). Raises ``ValueError`` for a graph with a tensor of a type no datatype
    carries, or a name the registry would refuse.
    """

    concurrency = 1
    """One ``session.run`` at a time (``WORKER_CONCURRENCY`` overrides it): ONNX Runtime spreads
    each call over its intra-op threads already, and calls running at once contend for the
    same cores."""

    def __init__(self, settings: OnnxSettings) -> None:
        self.settings = settings
        self.name = settings.model_name or settings.model_path.stem
        self.version = settings.model_version or "1"
        if not valid_model_name(self.name):
            raise ValueError(f"{self.name!r} is not a model name: set MODEL_NAME")
        if not valid_version(self.version):
            raise ValueError(f"{self.version!r} is not a model version")
        described = self._session(threads=1)
        self.graph_names: dict[str, str] = {}
        """Each tensor's field name -> its name in the graph."""
        self.inputs = [self._spec(node) for node in described.get_inputs()]
        self.outputs = [self._spec(node) for node in described.get_outputs()]
        del described
        self.max_batch_size = DEFAULT_MAX_BATCH_SIZE if self.batching else 1
        self.session: onnxruntime.InferenceSession | None = None
        """The serving session, from ``load`` on."""

    def _session(self, threads: int) -> onnxruntime.InferenceSession:
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        spinning = "1" if self.settings.intra_op_spinning else "0"
        options.add_session_config_entry("session.intra_op.allow_spinning", spinning)
        available = onnxruntime.get_available_providers()
        providers = [_CUDA, _CPU] if _CUDA in available else [_CPU]
        return onnxruntime.InferenceSession(
            str(self.settings.model_path), sess_options=options, providers=providers
        )

    def _spec(self, node: Any) -> TensorSpec:
        datatype = ONNX_DATATYPES.get(node.type)
        if datatype is None:
            raise ValueError(f"{node.name}: ONNX type {node.type} has no tensor datatype")
        name = re.sub(r"\W", "_", node.name, flags=re.ASCII)
        if not name or name[0].isdigit():
            name = f"t_{name}"
        if name in self.graph_names:
            raise ValueError(f"graph tensors {node.name!r} and {self.graph_names[name]!r} "
                             f"are both served as {name!r}")  # fmt: skip
        self.graph_names[name] = node.name
        shape = tuple(dim if isinstance(dim, int) and dim >= 0 else -1 for dim in node.shape)
        return TensorSpec(name, datatype, shape)

    async def load(self) -> None:
        """Make the serving session (``INTRA_OP_THREADS``)."""
        self.session = self._session(self.settings.intra_op_threads)

    async def close(self) -> None:
        """Drop the session."""
        self.session = None

    async def infer(self, inputs: dict[str, npt.NDArray[Any]]) -> dict[str, npt.NDArray[Any]]:
        """``session.run`` off the event loop; BYTES inputs reach the graph as ``str``
        (UTF-8), as ONNX Runtime's string tensors take them."""
        if self.session is None:
            raise RuntimeError("OnnxModel.infer before load()")
        feeds = {}
        for spec in self.inputs:
            array = inputs[spec.name]
            if spec.datatype == "BYTES":
                try:
                    array = np.vectorize(bytes.decode, otypes=[object])(array)
                except UnicodeDecodeError as e:
                    raise InvalidRequest(
                        f"input tensor {spec.name}: the graph takes UTF-8 text: {e}",
                        field=spec.name,
                    ) from e
            feeds[self.graph_names[spec.name]] = array
        names = [self.graph_names[spec.name] for spec in self.outputs]
        results = await asyncio.to_thread(self.session.run, names, feeds)
        return {spec.name: result for spec, result in zip(self.outputs, results, strict=True)}


def main() -> None:
    """``conveyor-onnx``: serve ``MODEL_PATH`` until SIGTERM or SIGINT."""
    settings = OnnxSettings()  # type: ignore[call-arg]  # MODEL_PATH: from the environment
    run_model(OnnxModel(settings), settings)


if __name__ == "__main__":
    main()
