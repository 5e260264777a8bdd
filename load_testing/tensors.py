"""The ``tensors`` scenario: big tensors through each front end, beside the reference carrying
the same bytes, in the same run (issue 29: big tensors, and its benchmark goals).

One Conveyor stack, with the identity tensor model (``load_testing/tensor_model``) added, and
the reference system run on the same brokers. The payload is a 224x224x3 UINT8 image (150,528
bytes, one BYTES element) and a 1x768 FP32 embedding (3,072 bytes); every answer carries both
back, so each request moves 153,600 tensor bytes each way (``load_testing.tensor_payloads``).
Results are kept ``RESULT_TTL_S`` seconds in Redis, not the stacks' usual 300: at a few hundred
answers of 150 KB a second that would pile gigabytes into a shared Redis. The legs:

- ``reference``: ``POST /predict`` with the tensors' bytes; its worker echoes them (wrk);
- ``REST binary``: ``/v2/models/<tensor>/infer`` with the binary tensor data extension (wrk);
- ``REST JSON``: the same in JSON, the image as base64 text (wrk);
- ``gRPC raw``: ``ModelInfer`` with ``raw_input_contents`` (h2load, a framed message);
- ``model_a REST`` and ``model_a gRPC``: model_a's tensor form, ``/v2`` JSON against
  ``ModelInfer`` (goal: gRPC >= 1.0x REST at ``--connections``, 32, p99 no worse).

Before the load, ``MAX_BODY_BYTES`` (the gateway's setting in this environment, else its
default): a REST binary body of exactly the limit is served, one byte more gets 413 with a JSON
error, and a gRPC request one byte over the limit gets ``RESOURCE_EXHAUSTED`` (the gateway's
gRPC receive limit is kept equal). Each leg is checked by one call through a real client (the
answer must carry back what was sent); a leg that fails it is skipped, saying why. h2load reads
no gRPC trailers, so after each gRPC run the gateway's own counts must show no failed call.

Rounds alternate as in ``main``. Printed: per row req/s, MB/s of tensors, p50/p99, errors,
unexpected answers (wrk: not the expected media type or size; gRPC: calls the gateway counted
as failed), the gateway's CPU ms per MB and each process's CPU ms per request; each tensor leg
beside the reference (bytes/s per round and overall, gateway CPU per MB, worst p99); gRPC
against REST on model_a; the verdicts. Without a gRPC front end on ``GRPC_PORT`` the gRPC legs
are skipped with a line saying so, and their verdicts are "not measured".
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final

import grpc
import httpx
from tritonclient.grpc import service_pb2

from api.config import Settings
from load_testing import gateway_counts, goals, grpc_calls, h2load
from load_testing import tensor_payloads as tp
from load_testing.legs import Leg, grpc_file, grpc_url, rest_file, verified
from load_testing.reference.process import Reference
from load_testing.report import (
    Comparison,
    Row,
    compare,
    ratio_lines,
    tensor_ratio_lines,
    tensor_table,
)
from load_testing.stack import Stack
from load_testing.targets import Target, alternate, brokers, with_brokers
from load_testing.wrk import WrkResult

__all__ = ["RESULT_TTL_S", "run_tensors"]

RESULT_TTL_S: Final = 5
"""Seconds each system keeps a result in Redis in this scenario."""

TENSOR_MODULE: Final = "load_testing.tensor_model"

REFERENCE, REST_BINARY, REST_JSON, GRPC_RAW = "reference", "REST binary", "REST JSON", "gRPC raw"
MODEL_A_REST, MODEL_A_GRPC = "model_a REST", "model_a gRPC"


@dataclass
class Tally:
    """A gRPC leg's runs against the gateway's own counts (h2load reads no gRPC status).

    The gateway counts every call, warm-ups included, by outcome; h2load logs the calls of its
    measured periods. At the end of each run h2load cuts off the call each connection has in
    flight, which the gateway counts as cancelled (a client error): up to one per connection a
    run is explained so; any more failed calls are unexplained failures.
    """

    leg: str
    model: str
    answered: int = 0
    """HTTP 200s h2load logged."""
    counted_ok: int = 0
    counted_other: int = 0
    unexplained: int = 0

    def add(self, answered: int, grown: dict[str, float], connections: int) -> int:
        """One run: h2load's answers and the growth of the gateway's counts by outcome; returns
        the run's unexplained failures."""
        other = round(sum(n for key, n in grown.items() if key != gateway_counts.OK))
        excess = max(0, other - connections)
        self.answered += answered
        self.counted_ok += round(grown.get(gateway_counts.OK, 0))
        self.counted_other += other
        self.unexplained += excess
        return excess

    def line(self) -> str:
        """What the gateway counted for what h2load saw."""
        line = (
            f"{self.leg}: h2load logged {self.answered:,} HTTP 200s; the gateway counted "
            f"{self.counted_ok:,} good calls of {self.model} (warm-ups too) and "
            f"{self.counted_other:,} others, {self.unexplained:,} of them beyond the calls h2load "
            "cuts off when it stops (one per connection a run)"
        )
        if self.counted_ok < self.answered:
            line += "; fewer good calls than answers: the uncounted ones are unchecked"
        return line


@dataclass(frozen=True)
class TensorLeg(Leg):
    """A leg (``load_testing.legs``) and the tensor bytes a request carries both ways (0 where
    it carries none to speak of)."""

    tensor_bytes: int


def run_tensors(args: argparse.Namespace, out: Path) -> list[goals.Verdict]:
    """The tensors scenario (see the module doc); returns its verdicts."""
    h2load.find_h2load()
    amqp_url, redis_url = brokers()
    tensors = tp.Tensors.sample()
    tallies: dict[str, Tally] = {}
    with (
        Reference(out / "logs", amqp_url, redis_url, result_ttl=RESULT_TTL_S) as reference,
        Stack(
            out / "logs",
            amqp_url=amqp_url,
            redis_url=redis_url,
            result_ttl=RESULT_TTL_S,
            extra_models={"tensor": TENSOR_MODULE},
        ) as stack,
    ):
        serves_grpc = grpc_calls.served(stack.grpc_target)
        missing = f"gRPC not served (GRPC_PORT {stack.grpc_port})"
        print(
            f"image {'x'.join(map(str, tp.IMAGE_SHAPE))} UINT8 ({len(tensors.image):,} bytes, one "
            f"BYTES element) and embedding 1x{tp.EMBEDDING_SIZE} FP32 "
            f"({len(tensors.embedding):,} bytes): {tensors.size:,} tensor bytes each way; MB/s "
            "below counts both ways"
        )
        if not serves_grpc:
            print(f"{missing}: the gRPC legs are skipped")
        limit_verdicts = _body_limit(stack, serves_grpc, missing)
        legs = _legs(
            stack, reference, tensors, out / "bodies", serves_grpc, amqp_url, redis_url, tallies
        )
        checked = verified(legs)
        sizes = {leg.name: leg.tensor_bytes for leg in checked}
        rows = alternate(
            [leg.target for leg in checked],
            args.rounds,
            args.seconds,
            args.connections,
            args.warmup,
            drives={leg.name: leg.drive for leg in checked},
            line=lambda row: tensor_table([row], sizes).splitlines()[-1],
        )
    sizes = {leg.name: leg.tensor_bytes for leg in legs}
    print(
        f"\n{args.connections} connections, {args.seconds:g} s per round "
        "(wrk -t1 for REST, h2load -t1 -m1 for gRPC)\n"
    )
    print(tensor_table(rows, sizes))
    print()
    for name in (REST_BINARY, REST_JSON, GRPC_RAW):
        for line in tensor_ratio_lines(rows, name, REFERENCE, sizes):
            print(line)
    for line in ratio_lines(rows, MODEL_A_GRPC, MODEL_A_REST):
        print(line)
    for tally in tallies.values():
        print(tally.line())
    print()
    verdicts = _verdicts(rows, {leg.name for leg in checked}, serves_grpc, missing)
    verdicts += limit_verdicts
    for verdict in verdicts:
        print(verdict.line())
    return verdicts


def _verdicts(
    rows: list[Row], measured: set[str], serves_grpc: bool, missing: str
) -> list[goals.Verdict]:
    def why(name: str) -> str:
        if name in (GRPC_RAW, MODEL_A_GRPC) and not serves_grpc:
            return missing
        return "its one-call check failed" if name not in measured else "no rows"

    grpc_rest = compare(rows, MODEL_A_GRPC, MODEL_A_REST)
    by_leg: dict[str, Comparison | str] = {}
    for name in (GRPC_RAW, REST_BINARY):
        comparison = compare(rows, name, REFERENCE)
        by_leg[name] = comparison if comparison is not None else why(name)
    absent = MODEL_A_GRPC if MODEL_A_GRPC not in measured else MODEL_A_REST
    return [*goals.grpc_vs_rest(grpc_rest, why(absent)), *goals.big_tensors(by_leg)]


def _legs(
    stack: Stack,
    reference: Reference,
    tensors: tp.Tensors,
    bodies: Path,
    serves_grpc: bool,
    amqp_url: str,
    redis_url: str,
    tallies: dict[str, Tally],
) -> list[TensorLeg]:
    bodies.mkdir(parents=True, exist_ok=True)
    api = stack.services["api"].pid
    tensor_model = stack.model_name("tensor")
    tensor_groups = {"gateway": api, "worker": stack.services["tensor"].pid}
    model_a_groups = {"gateway": api, "worker": stack.services["model_a"].pid}
    reference_pids = {name: reference.processes[name].pid for name in ("gateway", "worker")}
    infer = f"{stack.api_url}/v2/models/{{}}/infer"
    size = 2 * tensors.size

    def target(
        name: str, url: str, groups: dict[str, int], pids: dict[str, int] | None = None
    ) -> Target:
        return with_brokers(Target(name, url, pids or {}, groups=groups), amqp_url, redis_url)

    def rest(
        name: str,
        url: str,
        body: tp.HttpBody,
        groups: dict[str, int],
        *,
        check: Callable[[httpx.Response], str | None],
        least: int,
        tensor_bytes: int,
        pids: dict[str, int] | None = None,
    ) -> TensorLeg:
        """A REST leg driven by wrk (``rest_file``): a 2xx answer must be of the body's media
        type and at least ``least`` bytes long."""
        drive, verify = rest_file(name, url, body, bodies, least=least, check=check)
        return TensorLeg(target(name, url, groups, pids), drive, verify, tensor_bytes)

    binary, text = tp.rest_binary(tensors), tp.rest_json(tensors)
    legs = [
        rest(REFERENCE, reference.url, tp.reference_body(tensors), {}, pids=reference_pids,
             check=lambda a: tp.check_reference(a.content, tensors),
             least=tensors.size, tensor_bytes=size),
        rest(REST_BINARY, infer.format(tensor_model), binary, tensor_groups,
             check=lambda a: tp.check_rest_binary(a.content, a.headers.get(tp.BINARY_HEADER),
                                                  tensors),
             least=tensors.size, tensor_bytes=size),
        rest(REST_JSON, infer.format(tensor_model), text, tensor_groups,
             check=lambda a: tp.check_rest_json(a.content, tensors),
             least=len(tensors.image), tensor_bytes=size),  # its base64 text is longer
        rest(MODEL_A_REST, infer.format(stack.model_a), tp.model_a_json(), model_a_groups,
             check=lambda a: tp.check_model_a_json(a.content), least=1, tensor_bytes=0),
    ]  # fmt: skip
    if not serves_grpc:
        return legs

    def grpc_leg(
        name: str,
        model: str,
        request: service_pb2.ModelInferRequest,
        groups: dict[str, int],
        *,
        check: Callable[[service_pb2.ModelInferResponse], str | None],
        tensor_bytes: int,
    ) -> TensorLeg:
        """A gRPC leg driven by h2load (``grpc_file``); the calls the gateway counted as failed
        during a run, beyond those h2load cuts off (``Tally``), are its unexpected answers."""
        run, verify = grpc_file(name, stack.grpc_target, request, bodies, check=check)
        tally = tallies.setdefault(name, Tally(name, model))

        def drive(seconds: float, connections: int) -> WrkResult:
            before = gateway_counts.fetch(stack.api_url, model)
            result = run(seconds, connections)
            grown = gateway_counts.delta(before, gateway_counts.fetch(stack.api_url, model))
            failed = tally.add(result.ok, grown, connections)
            return replace(result, unexpected=result.unexpected + failed)

        url = grpc_url(stack.grpc_target)
        return TensorLeg(target(name, url, groups), drive, verify, tensor_bytes)

    return [
        *legs,
        grpc_leg(GRPC_RAW, tensor_model, tp.grpc_request(tensor_model, tensors), tensor_groups,
                 check=lambda r: tp.check_grpc(r, tensors), tensor_bytes=size),
        grpc_leg(MODEL_A_GRPC, stack.model_a, tp.model_a_grpc(stack.model_a), model_a_groups,
                 check=tp.check_model_a_grpc, tensor_bytes=0),
    ]  # fmt: skip


def max_body_bytes() -> int:
    """The gateway's ``MAX_BODY_BYTES`` in this environment (the stack passes it on), else its
    default."""
    value = os.environ.get("MAX_BODY_BYTES")
    if value is not None:
        return int(value)
    default = Settings.model_fields["max_body_bytes"].default
    assert isinstance(default, int)
    return default


def _status(code: grpc.StatusCode, message: str) -> str:
    return str(code.name) + (f" ({message[:120]})" if message else "")


def _body_limit(stack: Stack, serves_grpc: bool, missing: str) -> list[goals.Verdict]:
    """``MAX_BODY_BYTES`` at and one byte past the limit, on REST and gRPC."""
    limit = max_body_bytes()
    model = stack.model_name("tensor")
    url = f"{stack.api_url}/v2/models/{model}/infer"
    goal = "body limit"
    verdicts = []
    for size, expect_served in ((limit, True), (limit + 1, False)):
        body, tensors = tp.sized_rest_binary(size)
        answer = httpx.post(
            url,
            content=body.body,
            timeout=60,
            headers={"Content-Type": body.content_type, **body.headers},
        )
        if expect_served:
            problem = (
                tp.check_rest_binary(answer.content, answer.headers.get(tp.BINARY_HEADER), tensors)
                if answer.status_code == 200
                else f"HTTP {answer.status_code}: {answer.text[:200]}"
            )
            target = "served (200, the image back)"
        else:
            problem = tp.check_refusal(
                answer.status_code, answer.headers.get("content-type", ""), answer.content, 413
            )
            target = "413 with a JSON error"
        measured = f"REST body of {size:,} bytes (MAX_BODY_BYTES {limit:,}): " + (
            problem or f"HTTP {answer.status_code}"
        )
        verdicts.append(goals.Verdict(goal, measured, target, problem is None))
    if not serves_grpc:
        verdicts.append(
            goals.Verdict(
                goal, f"gRPC: not measured: {missing}", "RESOURCE_EXHAUSTED past the limit", False
            )
        )
        return verdicts
    # At the limit the embedding alone is asked for: the identity answer of the whole request
    # would be a little larger than the request, and answers have a limit of their own.
    checks = [
        (limit, grpc.StatusCode.OK, ["embedding"]),
        (limit + 1, grpc.StatusCode.RESOURCE_EXHAUSTED, []),
    ]
    for size, expected, outputs in checks:
        request = tp.sized_grpc_request(model, size, outputs=outputs)
        code, message = grpc_calls.call_status(stack.grpc_target, request)
        verdicts.append(
            goals.Verdict(
                goal,
                f"gRPC request of {size:,} bytes: {_status(code, message)}",
                expected.name + (" with a message" if expected != grpc.StatusCode.OK else ""),
                code == expected and (code == grpc.StatusCode.OK or bool(message)),
            )
        )
    code, message = grpc_calls.call_status(stack.grpc_target, tp.sized_grpc_request(model, limit))
    print(
        f"gRPC request of {limit:,} bytes answered whole (its identity answer is a little "
        f"larger): {_status(code, message)}; REST serves the same"
    )
    return verdicts
