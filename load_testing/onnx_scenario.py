"""The ``onnx`` scenario: the example image model served through Conveyor, against the model's
own limit on this machine (issue 33's goals).

The model is ``image.onnx`` (``models/onnx``: 224x224x3 UINT8 images in, 1,000 FP32 scores
out). The legs, alternated round after round like every scenario:

- ``in-process``: the baseline, the physical limit of the model here. The same file in an
  ``onnxruntime.InferenceSession`` in this process, called by a plain loop on a batch of
  ``best`` images, where ``best`` is the batch size of ``BATCH_SIZES`` with the most images per
  second in a calibration run before the rounds. Its "requests" are images; its p50/p99 are those
  of one batch's call.
- ``REST binary``: ``POST /v2/models/<m>/infer`` with one image per request in the binary tensor
  data extension, the scores answered in binary (wrk, ``--connections`` clients);
- ``gRPC raw``: ``ModelInfer`` with the image in ``raw_input_contents`` (h2load, one stream per
  client);
- ``wheel REST binary``: the REST leg against a second worker of the same file under a model
  name of its own, run by ``conveyor-onnx`` from the ``conveyor-worker[onnx]`` wheel installed
  into a fresh venv (``load_testing.wheel_worker``). Each worker idles while the other's leg
  runs.

Both workers batch dynamically (``MAX_BATCH_SIZE`` ``WORKER_BATCH``) and run one
``session.run`` at a time (the ONNX worker's default).

Two forms (``--model-cores``): by default every process shares every core, ONNX Runtime's
intra-op threads at its default everywhere, so the served legs pay for the gateway, the brokers
and the load generator out of the model's cores. With ``--model-cores N`` the model gets N cores
of its own, as a deployment that keeps a model on dedicated cores runs it: the baseline's loop
and both workers are pinned to the last N CPUs with N intra-op threads, and everything else
(this process and its load generators, the gateway, the local brokers) to the others
(``load_testing.cores``). Goals: each served leg >= 0.8x the baseline's
images per second; the wheel's worker within 5 % of the in-repo worker (REST binary against
REST binary). One request is one image, so images/s is req/s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path
from typing import Final

import httpx
import numpy as np
import onnxruntime as ort
from tritonclient.grpc import service_pb2

import models.onnx
from load_testing import cores, goals, grpc_calls, h2load, wheel_worker
from load_testing import tensor_payloads as tp
from load_testing.legs import Leg, grpc_file, grpc_url, rest_file, verified
from load_testing.report import Row, compare, ratio_lines, table
from load_testing.stack import Stack
from load_testing.targets import Target, alternate, brokers, local_broker_pid, with_brokers
from load_testing.wrk import WrkResult

__all__ = ["BATCH_SIZES", "run_onnx"]

BATCH_SIZES: Final = (1, 2, 4, 8, 16, 32)
"""The baseline's calibration: the loop's batch sizes tried."""

WORKER_BATCH: Final = 32
"""The served worker's ``MAX_BATCH_SIZE``."""

IMAGE_SHAPE: Final = (224, 224, 3)
SCORES: Final = 1000

IN_REPO, WHEEL_LABEL = "onnx_image", "onnx_wheel"
"""The two workers' labels in the stack (their model names carry the stack's tag)."""

BASELINE, REST_BINARY, GRPC_RAW, WHEEL = (
    "in-process",
    "REST binary",
    "gRPC raw",
    "wheel REST binary",
)


def image_model() -> Path:
    """The example image model's file (a runfile of this binary, beside ``models.onnx``)."""
    return Path(models.onnx.__file__).parent / "examples" / "image.onnx"


def _images(count: int, seed: int = 33) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, *IMAGE_SHAPE), dtype=np.uint8)


class InProcess:
    """The baseline: one session, one loop, one batch of images called again and again."""

    def __init__(self, model: Path, threads: int = 0, cpus: set[int] | None = None) -> None:
        """``threads``: intra-op threads (0: ONNX Runtime's default); ``cpus``: where the loop
        runs (None: anywhere this process may)."""
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(
            str(model), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.input = self.session.get_inputs()[0].name
        self.batch = 1
        self.cpus = cpus

    def scores(self, images: np.ndarray) -> np.ndarray:
        """The model's scores for ``images``."""
        (scores,) = self.session.run(None, {self.input: images})
        return np.asarray(scores)

    def run(self, seconds: float, batch: int) -> WrkResult:
        """Call the session on ``batch`` images for ``seconds`` (on ``cpus``); requests are
        images."""
        if self.cpus is None:
            return self._run(seconds, batch)
        others = os.sched_getaffinity(0)
        cores.pin([os.getpid()], self.cpus)
        try:
            return self._run(seconds, batch)
        finally:
            cores.pin([os.getpid()], others)

    def _run(self, seconds: float, batch: int) -> WrkResult:
        images = _images(batch)
        durations: list[float] = []
        start = time.perf_counter()
        while (now := time.perf_counter()) - start < seconds or not durations:
            self.session.run(None, {self.input: images})
            durations.append(time.perf_counter() - now)
        elapsed = time.perf_counter() - start
        ms = sorted(d * 1000 for d in durations)
        return WrkResult(
            requests=batch * len(durations),
            duration_s=elapsed,
            p50_ms=statistics.median(ms),
            p90_ms=ms[int(0.9 * (len(ms) - 1))],
            p99_ms=ms[int(0.99 * (len(ms) - 1))],
            max_ms=ms[-1],
            statuses={200: batch * len(durations)},
        )

    def calibrate(self, seconds: float) -> None:
        """Pick the batch size with the most images per second, printing each."""
        best = 0.0
        for size in BATCH_SIZES:
            result = self.run(seconds, size)
            print(f"in-process batch {size}: {result.rps:,.1f} images/s", flush=True)
            if result.rps > best:
                best, self.batch = result.rps, size
        print(f"in-process baseline: batches of {self.batch}", flush=True)


def rest_body(image: np.ndarray) -> tp.HttpBody:
    """``/v2`` infer with one image in the binary tensor data extension, scores in binary."""
    raw = image.tobytes()
    header = (
        '{"inputs":[{"name":"image","datatype":"UINT8","shape":[1,224,224,3],'
        f'"parameters":{{"binary_data_size":{len(raw)}}}}}],'
        '"parameters":{"binary_data_output":true}}'
    ).encode()
    return tp.HttpBody(header + raw, tp.OPAQUE, {tp.BINARY_HEADER: str(len(header))})


def grpc_request(model: str, image: np.ndarray) -> bytes:
    """``ModelInfer`` with one image in ``raw_input_contents``, serialized."""
    request = service_pb2.ModelInferRequest(model_name=model)
    request.inputs.add(name="image", datatype="UINT8", shape=[1, *IMAGE_SHAPE])
    request.raw_input_contents.append(image.tobytes())
    message: bytes = request.SerializeToString()
    return message


def _check_scores(got: np.ndarray, want: np.ndarray) -> str | None:
    if got.shape != want.shape:
        return f"scores of shape {got.shape}, not {want.shape}"
    if not np.allclose(got, want, rtol=1e-4, atol=1e-5):
        return f"scores differ from in-process ones by up to {np.abs(got - want).max():.3g}"
    return None


def _rest_scores(answer: httpx.Response) -> np.ndarray:
    header = int(answer.headers[tp.BINARY_HEADER])
    return np.frombuffer(answer.content[header:], dtype="<f4").reshape(1, SCORES)


def run_onnx(args: argparse.Namespace, out: Path) -> list[goals.Verdict]:
    """The onnx scenario (see the module doc); returns its verdicts."""
    h2load.find_h2load()
    amqp_url, redis_url = brokers()
    model = image_model()
    model_cpus: set[int] | None = None
    settings = {"MODEL_PATH": str(model), "MAX_BATCH_SIZE": str(WORKER_BATCH)}
    if args.model_cores:
        model_cpus, other_cpus = cores.split(args.model_cores)
        cores.pin([os.getpid()], other_cpus)
        settings["INTRA_OP_THREADS"] = str(args.model_cores)
        print(f"the model on CPUs {sorted(model_cpus)} ({args.model_cores} intra-op threads), "
              f"everything else on {sorted(other_cpus)}")  # fmt: skip
    else:
        print("every process on every core; intra-op threads at ONNX Runtime's default")
    baseline = InProcess(model, args.model_cores, model_cpus)
    image = _images(1)
    want = baseline.scores(image)
    baseline.calibrate(max(1.0, args.warmup))
    bodies = out / "bodies"
    bodies.mkdir(parents=True, exist_ok=True)
    baseline_leg = Leg(
        Target(BASELINE, "in-process", {}),
        lambda seconds, _connections: baseline.run(seconds, baseline.batch),
        lambda: None,
    )
    with (
        Stack(
            out / "logs",
            amqp_url=amqp_url,
            redis_url=redis_url,
            extra_models={IN_REPO: "models.onnx"},
            extra_env={IN_REPO: settings},
        ) as stack,
        wheel_worker.WheelWorker(
            out / "wheel", stack, stack.model_name(WHEEL_LABEL), settings
        ) as wheel,
    ):
        api = stack.services["api"].pid
        if model_cpus is not None:
            _pin_stack(stack, (stack.services[IN_REPO].pid, wheel.pid), model_cpus)
        in_repo = stack.model_name(IN_REPO)
        served = {"gateway": api, "worker": stack.services[IN_REPO].pid}
        legs = [
            baseline_leg,
            _rest_leg(REST_BINARY, stack, in_repo, served, image, want, bodies),
            *_grpc_legs(stack, in_repo, served, image, want, bodies),
            _rest_leg(WHEEL, stack, wheel.model, {"gateway": api, "worker": wheel.pid}, image,
                      want, bodies),
        ]  # fmt: skip
        checked = verified(legs)
        rows = alternate(
            [leg.target for leg in checked],
            args.rounds,
            args.seconds,
            args.connections,
            args.warmup,
            drives={leg.name: leg.drive for leg in checked},
        )
    print(f"\n{args.connections} connections, {args.seconds:g} s per round; one image a request\n")
    print(table(rows))
    print()
    for leg in (REST_BINARY, GRPC_RAW, WHEEL):
        for line in ratio_lines(rows, leg, BASELINE):
            print(line)
    for line in ratio_lines(rows, WHEEL, REST_BINARY):
        print(line)
    verdicts = _verdicts(rows)
    print()
    for verdict in verdicts:
        print(verdict.line())
    return verdicts


def _pin_stack(stack: Stack, workers: tuple[int, ...], model_cpus: set[int]) -> None:
    """The workers onto ``model_cpus``; the gateway, the registry, the other workers and the
    local brokers onto what this process runs on (the other CPUs)."""
    others = os.sched_getaffinity(0)
    for service in stack.services.values():
        if service.pid not in workers:
            cores.pin_group(service.pid, others)
    for pid in workers:
        cores.pin_group(pid, model_cpus)
    for url, port in ((stack.amqp_url, 5672), (stack.redis_url, 6379)):
        broker = local_broker_pid(url, port)
        if broker is not None:
            cores.pin([broker], others)


def _verdicts(rows: list[Row]) -> list[goals.Verdict]:
    verdicts = []
    for leg in (REST_BINARY, GRPC_RAW):
        comparison = compare(rows, leg, BASELINE)
        measured = (
            f"{leg}/{BASELINE} images/s {comparison.overall:.2f}x, p99 "
            f"{comparison.worst_p99_ms:.1f} ms"
            if comparison is not None and comparison.overall is not None
            else f"{leg}: not measured"
        )
        met = comparison is not None and (comparison.overall or 0) >= 0.8
        verdicts.append(goals.Verdict("onnx served", measured, ">= 0.8x", met))
    wheel = compare(rows, WHEEL, REST_BINARY)
    if wheel is None or wheel.overall is None:
        verdicts.append(goals.Verdict("onnx wheel", "not measured", "within 5 %", False))
    else:
        verdicts.append(
            goals.Verdict(
                "onnx wheel",
                f"{WHEEL}/{REST_BINARY} images/s {wheel.overall:.3f}x",
                "within 5 % (>= 0.95x)",
                wheel.overall >= 0.95,
            )
        )
    return verdicts


def _rest_leg(
    leg: str,
    stack: Stack,
    model: str,
    groups: dict[str, int],
    image: np.ndarray,
    want: np.ndarray,
    bodies: Path,
) -> Leg:
    url = f"{stack.api_url}/v2/models/{model}/infer"
    drive, verify = rest_file(
        leg,
        url,
        rest_body(image),
        bodies,
        least=4 * SCORES,
        check=lambda answer: _check_scores(_rest_scores(answer), want),
    )
    target = with_brokers(Target(leg, url, {}, groups=groups), stack.amqp_url, stack.redis_url)
    return Leg(target, drive, verify)


def _grpc_legs(
    stack: Stack,
    model: str,
    groups: dict[str, int],
    image: np.ndarray,
    want: np.ndarray,
    bodies: Path,
) -> list[Leg]:
    """The gRPC leg, or none (saying why) when the gateway serves no gRPC."""
    if not grpc_calls.served(stack.grpc_target):
        print(f"gRPC not served (GRPC_PORT {stack.grpc_port}): the gRPC leg is skipped")
        return []
    request = service_pb2.ModelInferRequest.FromString(grpc_request(model, image))

    def check(response: service_pb2.ModelInferResponse) -> str | None:
        scores = np.frombuffer(response.raw_output_contents[0], dtype="<f4").reshape(1, SCORES)
        return _check_scores(scores, want)

    drive, verify = grpc_file(GRPC_RAW, stack.grpc_target, request, bodies, check=check)
    url = grpc_url(stack.grpc_target)
    target = with_brokers(Target(GRPC_RAW, url, {}, groups=groups), stack.amqp_url, stack.redis_url)
    return [Leg(target, drive, verify)]
